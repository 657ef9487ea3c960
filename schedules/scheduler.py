"""The scheduler loop behind `manage.py runscheduler`.

Each pass does what is due at `now` (schedule ticks, delayed runs), asks when
the next thing is due, and sleeps until then. Nothing polls: a NOTIFY on
`notify.SCHEDULER_CHANNEL`, sent when a schedule or a delayed run changes,
cuts the sleep short, so a new schedule's first tick or a new delayed run is
never missed. The sleep is bounded all the same (SCHEDULER_MAX_SLEEP_SECONDS),
which also checks the listening connection is alive.

Any number of schedulers may run: the work of a pass is safe under racing
processes (row locks with SKIP LOCKED, and a unique (schedule, tick) record),
so a second scheduler adds availability, not duplicates.

A database that goes away (restart, failover) is waited out with backoff;
the listening connection is made again and the first pass after it does
whatever fell due meanwhile.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from runs import admission, notify
from schedules import metrics, services

logger = logging.getLogger("schedules.scheduler")

Clock = Callable[[], datetime]


def listen_params() -> dict[str, Any]:
    """Django's connection settings, for a connection of our own that only LISTENs."""
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    params.setdefault("application_name", "orchestrator-scheduler")
    return params


class Wakeup:
    """A LISTEN connection plus a self-pipe: `wait` returns on a NOTIFY, on
    `interrupt()` (from a signal handler or another thread), or at the timeout."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._conn: psycopg.Connection[Any] | None = None

    def interrupt(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except BlockingIOError:
            pass  # a wake-up is already pending

    def listening(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """LISTEN on a fresh connection. Call before reading what is due, so
        that a change committed after the read always wakes the wait."""
        self.close()
        if connection.vendor != "postgresql":
            return
        conn = psycopg.connect(**listen_params(), autocommit=True)
        conn.execute(f'LISTEN "{notify.SCHEDULER_CHANNEL}"')
        self._conn = conn

    def drain(self) -> int:
        """Forget the wake-ups received so far (the next pass reads the tables)."""
        if self._conn is None:
            return 0
        return len(list(self._conn.notifies(timeout=0)))

    def wait(self, timeout: float) -> None:
        fds = [self._read_fd]
        if self._conn is not None:
            fds.append(self._conn.fileno())
        readable, _, _ = select.select(fds, [], [], max(0.0, timeout))
        if self._read_fd in readable:
            try:
                os.read(self._read_fd, 512)
            except BlockingIOError:
                pass
        if self._conn is not None and not readable:
            self._conn.execute("SELECT 1")  # quiet for a whole sleep: is the peer still there?
        self.drain()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class Scheduler:
    """Fires due ticks and admits due delayed runs, then sleeps until the next one."""

    def __init__(
        self,
        *,
        clock: Clock = timezone.now,
        max_sleep: float | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.clock = clock
        self.max_sleep = settings.SCHEDULER_MAX_SLEEP_SECONDS if max_sleep is None else max_sleep
        self.max_backoff = max_backoff
        self.wakeup = Wakeup()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.interrupt()

    def install_signal_handlers(self) -> None:
        def shut_down(signum: int, frame: Any) -> None:
            logger.info("stopping on signal %s", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)

    def run_pass(self, *, ahead: bool = True) -> datetime | None:
        """Do everything due now, and with `ahead` make the runs of ticks due
        soon (services.prepare_due); return when the next thing is due (None:
        nothing is). A single pass (`--once`) makes nothing ahead: no pass
        may follow to hand it over at its tick."""
        now = self.clock()
        # The hand-over of runs made ahead of their tick first: it is what is due now.
        admission.admit_due(now)
        admission.admit_free_slots(now)
        services.fire_due(now, clock=self.clock, should_stop=lambda: self.stopping)
        moments = []
        if ahead:
            services.prepare_due(now, clock=self.clock, should_stop=lambda: self.stopping)
            moments.append(services.next_prepare_at(self.clock()))
        moments += [services.next_due_at(), admission.next_due_at()]
        return min((moment for moment in moments if moment is not None), default=None)

    def sleep_seconds(self, next_due: datetime | None) -> float:
        # Without PostgreSQL no NOTIFY wakes us: look again every second.
        bound = self.max_sleep if connection.vendor == "postgresql" else min(self.max_sleep, 1.0)
        if next_due is None:
            return bound
        return min(bound, max(0.0, (next_due - self.clock()).total_seconds()))

    def run(self) -> None:
        backoff = 0.05
        try:
            while not self.stopping:
                try:
                    if not self.wakeup.listening():
                        self.wakeup.connect()
                    next_due = self.run_pass()
                    metrics.SCHEDULER_UP.set(1)
                    backoff = 0.05
                    self.wakeup.wait(self.sleep_seconds(next_due))
                except (DatabaseError, psycopg.Error) as exc:
                    metrics.SCHEDULER_UP.set(0)
                    logger.warning(
                        "scheduler lost the database: %s; retrying in %.2fs",
                        exc.__class__.__name__,
                        backoff,
                        extra={"event": "scheduler_db_error"},
                    )
                    self.wakeup.close()
                    connection.close()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            self.wakeup.close()
            connection.close()
