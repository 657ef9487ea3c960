"""Real `manage.py runscheduler` processes for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.servers import ROOT, process_env, stop_process_group
from tests.waiting import wait_for


class SchedulerProcess:
    """One `manage.py runscheduler` in its own session."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        name = f"scheduler-{uuid.uuid4().hex[:6]}"
        self.db_application_name = f"orchestrator-test-{name}"
        self.env = process_env(
            LOG_FORMAT="plain", DB_POOL_MAX_SIZE="4", DB_APPLICATION_NAME=self.db_application_name, **env
        )
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra_args: str) -> SchedulerProcess:
        argv = [sys.executable, "manage.py", "runscheduler", *extra_args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._ready, timeout=20, what="the scheduler to start")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"scheduler exited early:\n{self.log()}")
        return "scheduler started" in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path.exists() else ""

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        return stop_process_group(self.proc, timeout=timeout)
