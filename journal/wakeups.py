"""Being woken when journal entries commit, for readers outside the event
loop (the webhook deliverer, commands). The live run list uses the stream
hub's shared listener instead (runs.stream).

On PostgreSQL a dedicated connection LISTENs on `notify.JOURNAL_CHANNEL`
(payload: the entry id); elsewhere (SQLite) this process's commits wake it,
and other processes' commits are found when `wait` times out. Either way a
reader reads after every `wait`, whatever it returned: a wake-up only says
"read soon", the table says what is there.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

import psycopg
from django.db import connection

from runs import notify
from runs.stream.listener import listener_params

logger = logging.getLogger("journal.wakeups")


class JournalWakeups:
    """`with JournalWakeups() as wakeups: ... wakeups.wait(timeout)`."""

    def __init__(self, application_name: str = "orchestrator-journal-listener") -> None:
        self.application_name = application_name
        self._conn: psycopg.Connection[Any] | None = None
        self._event = threading.Event()
        self._postgresql = connection.vendor == "postgresql"

    def __enter__(self) -> JournalWakeups:
        if self._postgresql:
            self._connect()
        else:
            notify.add_local_listener(self._local, notify.JOURNAL_CHANNEL)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._postgresql:
            self._close()
        else:
            notify.remove_local_listener(self._local, notify.JOURNAL_CHANNEL)

    def _local(self, _payload: str) -> None:
        self._event.set()

    def _connect(self) -> None:
        params = {**listener_params(), "application_name": self.application_name}
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f'LISTEN "{notify.JOURNAL_CHANNEL}"')
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def wait(self, timeout: float) -> bool:
        """Block until an entry may have committed (True) or `timeout` seconds passed (False).

        After a lost connection it reconnects and answers True, since
        whatever committed meanwhile was not announced.
        """
        if not self._postgresql:
            woken = self._event.wait(timeout)
            self._event.clear()
            return woken
        try:
            if self._conn is None:
                self._connect()
                return True
            woken = False
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                woken = True
            return woken
        except psycopg.Error as exc:
            logger.warning("journal listener lost its connection: %s", exc.__class__.__name__)
            self._close()
            time.sleep(min(timeout, 1.0))  # a database that is down is not retried in a tight loop
            return True
