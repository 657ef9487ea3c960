"""What a task sees of its run: input, checkpoints, and whether to stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from orchestrator import tracing
from runs import services
from runs.exceptions import AttemptSuperseded, RunFinished

logger = logging.getLogger("runs.worker")

WRITE_RETRY_FIRST_DELAY_S = 0.05
WRITE_RETRY_MAX_DELAY_S = 2.0

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
        self._written = 0  # checkpoints this attempt has sent: the next key's number

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

    def _append_retrying(self, items: list[dict[str, Any]]) -> None:
        delay = WRITE_RETRY_FIRST_DELAY_S
        deadline = time.monotonic() + settings.WORKER_WRITE_RETRY_SECONDS
        while True:
            try:
                services.append_attempt_checkpoints(self.run_id, self.attempt, items)
                return
            except (OperationalError, InterfaceError) as exc:
                connection.close()  # a broken connection goes back to no one
                if time.monotonic() + delay > deadline or self.canceled:
                    raise
                logger.warning(
                    "checkpoint write failed: retrying with the same keys",
                    extra={"runId": self.run_id, "reason": exc.__class__.__name__},
                )
                self._stopped.wait(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_DELAY_S)

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
        """Append `items` in order, each under a key of this attempt, so that a
        write retried after an ambiguous failure (a connection lost before the
        commit's answer arrived) is stored once."""
        if self.canceled:
            raise TaskStopped(self.stop_reason)
        with self._lock:
            first = self._written + 1
            self._written += len(items)
        keyed = [{**item, "key": f"a{self.attempt}-{first + offset}"} for offset, item in enumerate(items)]
        try:
            with tracing.span("run.checkpoints", **{"run.id": self.run_id, "checkpoints.count": len(items)}):
                self._append_retrying(keyed)
        except RunFinished:
            self.request_stop(CANCELED)
            raise TaskStopped(CANCELED) from None
        except AttemptSuperseded:
            self.request_stop(SUPERSEDED)
            raise TaskStopped(SUPERSEDED) from None
        finally:
            close_old_connections()
