"""Real `manage.py runworker` processes for tests, and helpers to await what they do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import redis
from django.conf import settings

from tests.servers import ROOT, process_env, stop_process_group
from tests.waiting import wait_for

# Fast enough for tests: a dead worker's runs are reclaimed within about two seconds.
TEST_WORKER_ENV = {
    "WORKER_LEASE_SECONDS": "1.5",
    "WORKER_KILL_GRACE_SECONDS": "0.5",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "WORKER_SWEEP_INTERVAL_SECONDS": "2",
    "WORKER_TASK_MODULES": "tests.worker_tasks",
    # The tests run commands of their own; a worker runs none unless told to.
    "WORKER_ALLOW_COMMAND": "true",
    "DB_POOL_MAX_SIZE": "12",
}


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def drop_keys(prefix: str, url: str | None = None) -> None:
    conn = redis.Redis.from_url(url or settings.REDIS_URL)
    try:
        keys = list(conn.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            conn.delete(*keys)
    finally:
        conn.close()


class WorkerProcess:
    """One `manage.py runworker` in its own session (so a SIGKILL takes its children too)."""

    def __init__(self, log_dir: Path, prefix: str, *, concurrency: int = 2, **env: str) -> None:
        self.prefix = prefix
        self.concurrency = concurrency
        self.env = process_env(REDIS_KEY_PREFIX=prefix, **{**TEST_WORKER_ENV, **env})
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra_args: str, wait_ready: bool = True) -> WorkerProcess:
        argv = [sys.executable, "manage.py", "runworker", "--concurrency", str(self.concurrency), *extra_args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait_ready:
            wait_for(self._ready, timeout=20)
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log()}")
        return "worker ready" in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the worker and everything it started, as an OOM kill or a lost node would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        return stop_process_group(self.proc, timeout=timeout)

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None
