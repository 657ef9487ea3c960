"""What a task sees of its run: input, checkpoints, and whether to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

from runs import services
from runs.exceptions import AttemptSuperseded, RunFinished

logger = logging.getLogger("runs.worker")

# Why a task is asked to stop. Only "shutdown" hands the run back to the queue.
CANCELED = "canceled"
TIMEOUT = "timeout"
SUPERSEDED = "superseded"
SHUTDOWN = "shutdown"


class TaskStopped(Exception):
    """Raised into a task that writes after it was told to stop."""


class TaskContext:
    """Handed to every task with the run's input.

    `checkpoint` appends to the run (for this attempt only); `canceled` turns
    true as soon as the run is canceled, times out, is taken over or the worker
    shuts down, and from then on every write raises TaskStopped.
    """

    def __init__(self, run_id: str, attempt: int, spec: dict[str, Any]) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.spec = spec
        self.input = spec.get("input")
        self.stop_reason: str | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._on_stop: list[Callable[[str], None]] = []

    @property
    def canceled(self) -> bool:
        return self._stopped.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when told to stop meanwhile."""
        return self._stopped.wait(max(0.0, seconds))

    def on_stop(self, callback: Callable[[str], None]) -> None:
        """Call `callback(reason)` when the task is told to stop (now, if it already was)."""
        with self._lock:
            if self.stop_reason is None:
                self._on_stop.append(callback)
                return
            reason = self.stop_reason
        callback(reason)

    def request_stop(self, reason: str) -> bool:
        """Tell the task to stop; the first reason wins. True if this call stopped it."""
        with self._lock:
            if self.stop_reason is not None:
                return False
            self.stop_reason = reason
            callbacks = list(self._on_stop)
            self._stopped.set()
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                logger.exception("stop callback failed", extra={"runId": self.run_id})
        return True

    def checkpoint(self, type: str, data: Any = None) -> None:
        self.checkpoints([{"type": type, "data": data}])

    def checkpoints(self, items: list[dict[str, Any]]) -> None:
        if self.canceled:
            raise TaskStopped(self.stop_reason)
        try:
            services.append_attempt_checkpoints(self.run_id, self.attempt, items)
        except RunFinished:
            self.request_stop(CANCELED)
            raise TaskStopped(CANCELED) from None
        except AttemptSuperseded:
            self.request_stop(SUPERSEDED)
            raise TaskStopped(SUPERSEDED) from None
        finally:
            close_old_connections()
