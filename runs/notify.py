"""Wake whoever follows a run (event streams) or the journal when they change.

On PostgreSQL the wake-up is a NOTIFY sent inside the writing transaction, so
it is delivered when, and only if, the change commits, to every server
process (NOTIFYs of one transaction with the same payload are folded into
one). Elsewhere (SQLite) in-process listeners are called after commit; other
processes' writes are then found by the readers' short poll.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection, transaction

# Payload: a run id. Sent for every change of a run or its checkpoints.
CHANNEL = "orchestrator_runs"
# Payload: a journal entry id. Sent for every journal entry (journal.services).
JOURNAL_CHANNEL = "orchestrator_journal"
# Payload: what changed ("schedule", "run"). Schedulers listen here: a schedule
# or a delayed run changed, so the next due instant may have moved.
SCHEDULER_CHANNEL = "orchestrator_scheduler"

_local_listeners: dict[str, list[Callable[[str], None]]] = {}


def add_local_listener(callback: Callable[[str], None], channel: str = CHANNEL) -> None:
    _local_listeners.setdefault(channel, []).append(callback)


def remove_local_listener(callback: Callable[[str], None], channel: str = CHANNEL) -> None:
    listeners = _local_listeners.get(channel, [])
    if callback in listeners:
        listeners.remove(callback)


def _call_local(channel: str, payload: str) -> None:
    for callback in list(_local_listeners.get(channel, [])):
        callback(payload)


def send(channel: str, payload: str) -> None:
    """Wake `channel`'s listeners with `payload` once the current transaction commits."""
    if connection.vendor == "postgresql":
        # Delivered to every process's listener, this one included, so an
        # in-process call would only be a second wake-up for the same commit.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])
        return
    transaction.on_commit(lambda: _call_local(channel, payload))


def run_changed(run_id: str) -> None:
    """Announce that a run or its checkpoints changed; call inside the write's transaction."""
    send(CHANNEL, str(run_id))


def runs_changed(run_ids: list[str]) -> None:
    """`run_changed` for many runs, in one statement."""
    if connection.vendor != "postgresql":
        for run_id in run_ids:
            send(CHANNEL, run_id)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, id) FROM unnest(%s::text[]) AS id", [CHANNEL, run_ids])


def scheduler_changed(what: str) -> None:
    """Wake every scheduler process when this transaction commits (on SQLite,
    a scheduler in another process finds the change at its next short sleep)."""
    send(SCHEDULER_CHANNEL, what)
