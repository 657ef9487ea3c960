"""The LISTEN connection checks its peer when it has been quiet, and stays
what it was: listening, and shown as a LISTEN connection in pg_stat_activity."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid

import pytest
from django.db import connection

from runs import notify
from runs.stream import listener
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingHub:
    """What the listener calls on the hub, recorded."""

    def __init__(self) -> None:
        self.closing = False
        self.listening = False
        self.woken: list[str] = []

    def wake_all(self) -> None:
        pass

    def wake(self, run_id: str) -> None:
        self.woken.append(run_id)

    def wake_journal(self, payload: str) -> None:
        pass


def _activity(application_name: str) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query, query_start FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return cursor.fetchone()


def test_a_quiet_listener_checks_its_peer_and_still_shows_and_works_as_a_listen_connection(monkeypatch):
    monkeypatch.setattr(listener, "QUIET_CHECK_SECONDS", 0.2)
    name = f"orchestrator-test-listener-{uuid.uuid4().hex[:8]}"
    params = {**listener.listener_params(), "application_name": name}
    hub = RecordingHub()
    stop = threading.Event()

    async def listen_until_stopped() -> None:
        task = asyncio.create_task(listener.listen_forever(hub, params, max_backoff=0.5))
        await asyncio.to_thread(stop.wait)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    thread = threading.Thread(target=asyncio.run, args=(listen_until_stopped(),), daemon=True)
    thread.start()
    try:
        first = wait_for(lambda: hub.listening and _activity(name), what="the listener to be listening")
        # A later query_start: the quiet check has run since.
        checked = wait_for(
            lambda: (row := _activity(name)) and row[1] > first[1] and row, what="the quiet check to run"
        )
        assert checked[0].startswith("LISTEN")

        notify.send(notify.CHANNEL, "after-the-check")
        wait_for(lambda: "after-the-check" in hub.woken, what="a notification after the check")
    finally:
        stop.set()
        thread.join(5)
    wait_for(lambda: _activity(name) is None, what="the listener's connection to close")
