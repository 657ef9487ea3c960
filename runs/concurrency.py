"""Concurrency keys: never more than `limit` runs of a key handed to a
backend or running at once, however many API processes, workers and
schedulers race.

A key's runs are counted under the lock of its `ConcurrencyKey` row
(`SELECT … FOR UPDATE`), taken by every step that may hand one over or free
a slot: a create, a gate opening (admission), and a run of the key leaving
the slot (a final status, or a retry's way back to `pending`). Counting and
handing over are thus one step per key: two processes cannot both see the
last free slot. A run holds a slot from its handover (pending with no gate)
until it ends; one that finds no slot waits `pending` with `waitingFor`
`{"reason": "concurrency", "key", "limit"}` and is handed over, oldest
first, by the transaction that frees a slot.

The limit in force is the key's: the latest run created with the key sets
it (a lower limit admits no one until enough runs of the key end; nothing
running is stopped).

Lock order, so that no two of these wait on each other: a run's row, then
its key's row, then (SKIP LOCKED, never waiting) the runs waiting for the
key; and all of them before the journal's clock (journal.services).
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Q

from runs import states
from runs.models import HELD, ConcurrencyKey, Run

CONCURRENCY = "concurrency"

# Runs that hold a slot of their key: handed over (no gate) or running.
ACTIVE = Q(status=states.RUNNING) | Q(status=states.PENDING, waiting_for__isnull=True)


def set_key(key: str, limit: int) -> ConcurrencyKey:
    """Create the key's row or set its limit, and lock it."""
    row, created = ConcurrencyKey.objects.select_for_update().get_or_create(
        key=key, defaults={"limit": limit}
    )
    if not created and row.limit != limit:
        row.limit = limit
        row.save(update_fields=["limit", "updated_at"])
    return row


def lock_key(key: str) -> ConcurrencyKey | None:
    return ConcurrencyKey.objects.select_for_update().filter(key=key).first()


def lock_keys(keys: list[str | None]) -> None:
    """Lock these keys' rows in one order (by key), so that two transactions
    locking several never wait on each other in a circle."""
    wanted = sorted({key for key in keys if key})
    if wanted:
        list(ConcurrencyKey.objects.select_for_update().filter(key__in=wanted).order_by("key"))


def active_count(key: str, *, excluding: Any = None) -> int:
    queryset = Run.objects.filter(ACTIVE, concurrency_key=key)
    if excluding is not None:
        queryset = queryset.exclude(pk=excluding)
    return queryset.count()


def gate(run: Run, row: ConcurrencyKey | None = None) -> dict[str, Any] | None:
    """Under the key's lock: the `waitingFor` of a run of a full key, or None
    when a slot is free for it (it then holds it once saved without a gate)."""
    key = run.concurrency_key
    if not key:
        return None
    row = row or lock_key(key) or set_key(key, run.concurrency_limit or 1)
    if active_count(key, excluding=run.pk) < row.limit:
        return None
    return {"reason": CONCURRENCY, "key": key, "limit": row.limit}


def holds_slot(run: Run) -> bool:
    return bool(run.concurrency_key) and (
        run.status == states.RUNNING or (run.status == states.PENDING and run.waiting_for is None)
    )


def lock_waiting(run: Run) -> list[Run]:
    """`run` is about to free its key's slot: lock the key, then, oldest
    first and skipping any another transaction holds (a cancel), the runs
    waiting for as many slots as will be free."""
    key = run.concurrency_key
    if not key:
        return []
    row = lock_key(key)
    if row is None:
        return []
    free = row.limit - active_count(key, excluding=run.pk)
    if free <= 0:
        return []
    waiting = (
        Run.objects.filter(HELD, concurrency_key=key, waiting_for__reason=CONCURRENCY)
        .order_by("created_at", "id")
        .select_for_update(**({"skip_locked": True} if connection.vendor == "postgresql" else {}))
    )
    return list(waiting[:free])
