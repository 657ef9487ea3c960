"""Wake whoever follows a run (event streams) when it changes.

On PostgreSQL the wake-up is a NOTIFY sent inside the writing transaction, so
it is delivered when, and only if, the change commits, to every server
process (NOTIFYs of one transaction with the same payload are folded into
one). Elsewhere (SQLite) in-process listeners are called after commit; other
processes' writes are then found by the stream's short poll.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection, transaction

CHANNEL = "orchestrator_runs"
# Schedulers listen here: a schedule or a delayed run changed, so the next due
# instant may have moved.
SCHEDULER_CHANNEL = "orchestrator_scheduler"

_local_listeners: list[Callable[[str], None]] = []


def add_local_listener(callback: Callable[[str], None]) -> None:
    _local_listeners.append(callback)


def remove_local_listener(callback: Callable[[str], None]) -> None:
    if callback in _local_listeners:
        _local_listeners.remove(callback)


def _call_local(run_id: str) -> None:
    for callback in list(_local_listeners):
        callback(run_id)


def run_changed(run_id: str) -> None:
    """Announce that a run or its checkpoints changed; call inside the write's transaction."""
    run_id = str(run_id)
    if connection.vendor == "postgresql":
        # Delivered to every process's listener, this one included, so the
        # in-process call below would only be a second wake-up for the same commit.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, run_id])
        return
    transaction.on_commit(lambda: _call_local(run_id))


def scheduler_changed(what: str) -> None:
    """Wake every scheduler process when this transaction commits (PostgreSQL
    only; elsewhere a scheduler finds the change at its next bounded sleep)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [SCHEDULER_CHANNEL, what])
