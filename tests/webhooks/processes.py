"""Real `manage.py runwebhooks` processes for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.servers import ROOT, process_env, stop_process_group
from tests.waiting import wait_for

# Quick enough for tests: a dead deliverer's claim expires in 4 s.
TEST_DELIVERER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "WEBHOOK_CLAIM_SECONDS": "4",
    "WEBHOOK_POLL_SECONDS": "0.05",
    "WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2",
    "WEBHOOK_RETRY_JITTER": "0",
}


class DelivererProcess:
    """One `manage.py runwebhooks` in its own session, logging to a file."""

    def __init__(self, log_dir: Path, *, concurrency: int = 4, **env: str) -> None:
        self.application_name = f"orchestrator-test-webhooks-{uuid.uuid4().hex[:6]}"
        self.env = process_env(DB_APPLICATION_NAME=self.application_name, **{**TEST_DELIVERER_ENV, **env})
        self.concurrency = concurrency
        self.log_path = log_dir / f"{self.application_name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DelivererProcess:
        argv = [sys.executable, "manage.py", "runwebhooks", "--concurrency", str(self.concurrency)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._ready, timeout=20, what="the deliverer to start")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"deliverer exited early:\n{self.log()}")
        return "deliverer ready" in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a lost node would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def terminate(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        return stop_process_group(self.proc)
