"""What a task sees of its run: input, checkpoints, and whether to stop."""

from __future__ import annotations

import contextvars
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
# Checkpoints are coalesced: a write goes out once the oldest waiting item is
# this old, or this many are waiting, whichever comes first. A task emitting
# one checkpoint at a time otherwise paid a transaction per checkpoint.
COALESCE_SECONDS = 0.02
COALESCE_MAX_ITEMS = 100

# Why a task is asked to stop. Only "shutdown" hands the run back to the queue.
CANCELED = "canceled"
TIMEOUT = "timeout"
SUPERSEDED = "superseded"
SHUTDOWN = "shutdown"


class TaskStopped(Exception):
    """Raised into a task that writes after it was told to stop."""


class TaskContext:
    """Handed to every task with the run's input.

    `checkpoint` appends to the run (for this attempt only); `stopping` turns
    true as soon as the run is canceled, times out, is taken over or the worker
    shuts down (`stop_reason` says which), and from then on every write raises
    TaskStopped.
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
        # Keyed checkpoints not yet written, oldest first, and when they are due.
        self._pending: list[dict[str, Any]] = []
        self._due: float | None = None
        self._pending_changed = threading.Condition(threading.Lock())
        # One write at a time, in key order; re-entrant, since a failed write stops the task.
        self._writing = threading.RLock()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._flush_error: BaseException | None = None

    @property
    def stopping(self) -> bool:
        """Whether the task has been told to stop, for whichever reason."""
        return self._stopped.is_set()

    @property
    def canceled(self) -> bool:
        """The former name of `stopping`, kept for tasks written against it;
        it was true after a timeout or takeover too, not only a cancel."""
        return self.stopping

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
                if time.monotonic() + delay > deadline or self.stopping:
                    raise
                logger.warning(
                    "checkpoint write failed: retrying with the same keys",
                    extra={"runId": self.run_id, "reason": exc.__class__.__name__},
                )
                self._stopped.wait(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_DELAY_S)

    def request_stop(self, reason: str) -> bool:
        """Tell the task to stop; the first reason wins. True if this call stopped it."""
        if reason == SHUTDOWN and self.stop_reason is None:
            # What the task emitted before the stop is kept, as when every
            # checkpoint was written at once (a canceled or superseded
            # attempt could not write it anyway; a timeout flushes first).
            self.flush_quietly()
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
        commit's answer arrived) is stored once.

        They are written within COALESCE_SECONDS, together with the task's
        other checkpoints of that time (at most COALESCE_MAX_ITEMS per write);
        `flush()` writes them now. A failure of a write made in the
        background is raised by the next call."""
        if self.stopping:
            raise TaskStopped(self.stop_reason)
        self._raise_flush_error()
        with self._lock:
            first = self._written + 1
            self._written += len(items)
        keyed = [{**item, "key": f"a{self.attempt}-{first + offset}"} for offset, item in enumerate(items)]
        with self._pending_changed:
            self._pending.extend(keyed)
            full = len(self._pending) >= COALESCE_MAX_ITEMS
            if not full and self._due is None:
                self._due = time.monotonic() + COALESCE_SECONDS
                self._start_flusher()
                self._pending_changed.notify()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every checkpoint emitted so far; TaskStopped if the run is over or taken over."""
        with self._writing:
            while True:
                with self._pending_changed:
                    batch = self._pending[:COALESCE_MAX_ITEMS]
                    del self._pending[: len(batch)]
                    if not self._pending:
                        self._due = None
                if not batch:
                    break
                self._write(batch)
        self._raise_flush_error()

    def flush_quietly(self) -> None:
        """flush(), for a stop or the end of the task: a failure is logged, not raised."""
        try:
            self.flush()
        except TaskStopped:
            pass
        except Exception:
            logger.warning("checkpoint write failed", exc_info=True, extra={"runId": self.run_id})
        finally:
            close_old_connections()

    def close(self) -> None:
        """End the background writer (after a last flush by the caller)."""
        with self._pending_changed:
            self._closed = True
            self._pending_changed.notify()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(5)

    def _raise_flush_error(self) -> None:
        error, self._flush_error = self._flush_error, None
        if error is not None:
            raise error

    def _start_flusher(self) -> None:
        if self._flusher is None:
            # In the task's context: its writes stay spans of the run's attempt.
            context = contextvars.copy_context()
            self._flusher = threading.Thread(
                target=context.run,
                args=(self._flush_in_background,),
                name=f"checkpoints-{self.run_id}",
                daemon=True,
            )
            self._flusher.start()

    def _flush_in_background(self) -> None:
        try:
            while True:
                with self._pending_changed:
                    while not self._closed and (
                        self._due is None or (wait := self._due - time.monotonic()) > 0
                    ):
                        self._pending_changed.wait(None if self._due is None else wait)
                    if self._closed:
                        return
                try:
                    self.flush()
                except TaskStopped:
                    pass  # the task is told to stop; its next write raises
                except BaseException as exc:
                    self._flush_error = exc
                    with self._pending_changed:
                        self._due = None
        finally:
            connection.close()  # this thread's connection goes back to the pool

    def _write(self, keyed: list[dict[str, Any]]) -> None:
        try:
            with tracing.span("run.checkpoints", **{"run.id": self.run_id, "checkpoints.count": len(keyed)}):
                self._append_retrying(keyed)
        except RunFinished:
            self.request_stop(CANCELED)
            raise TaskStopped(CANCELED) from None
        except AttemptSuperseded:
            self.request_stop(SUPERSEDED)
            raise TaskStopped(SUPERSEDED) from None
        finally:
            close_old_connections()
