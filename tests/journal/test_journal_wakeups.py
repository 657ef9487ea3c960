"""Readers outside the event loop are woken when a journal entry commits."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from journal import selectors
from journal.wakeups import JournalWakeups
from runs import services

pytestmark = pytest.mark.django_db(transaction=True)


def _create_in_thread() -> threading.Thread:
    def body() -> None:
        try:
            services.create_run(mode="redis", spec={"task": "sleep"})
        finally:
            connection.close()

    return threading.Thread(target=body)


def test_a_commit_wakes_the_listener_and_the_entry_is_there():
    before = selectors.newest_id()
    with JournalWakeups() as wakeups:
        writer = _create_in_thread()
        writer.start()
        assert wakeups.wait(30.0) is True
        writer.join()
    assert [entry.id for entry in selectors.entries_after(before, limit=10)] == [before + 1]
