"""Concurrency keys: never more than `limit` runs of a key handed to a
backend or running at once, however many API processes, workers and
schedulers race.

A key's runs are counted under the lock of its `ConcurrencyKey` row
(`SELECT … FOR UPDATE`), taken by every step that may hand one over: a
create and a gate opening (admission). Counting and handing over are thus
one step per key: two processes cannot both see the last free slot. A run
holds a slot from its handover (pending with no gate) until it ends; one
that finds no slot waits `pending` with `waitingFor` `{"reason":
"concurrency", "key", "limit"}`.

Freeing a slot (a final status, or a retry's way back to `pending`) needs
no wait for the key: a count taken before that commit sees the slot still
held, which admits fewer, never more. At the very end of its transaction
(after its journal entry) the change that frees a slot of a Redis run hands
it to the oldest waiting run of the key itself, if the key's row is free
(`SKIP LOCKED`: it never waits for it), in one round trip (a function in
the database, `hand_over_waiting`); otherwise, or on SQLite, the handover
happens right after the commit, in a transaction of its own
(`admission.admit_waiting`).
A finish thus never queues on its key's row, and holds it, when it takes
it, only for its commit. Should a process die between a commit and its
handover, the scheduler's next pass finds the key (`keys_with_free_slots`).

The limit in force is the key's: the latest run created with the key sets
it (a lower limit admits no one until enough runs of the key end; nothing
running is stopped).

Lock order, so that no two of these wait on each other: a run's row, then
its key's row, then (SKIP LOCKED, never waiting) the runs waiting for the
key; and all of them before the journal's clock (journal.services). The
one thing after the clock is the handover at the end of a finish, whose
locks (the key's row, the waiting runs) are only tried, never waited for:
a lock nobody waits on closes no circle. A handover writes no journal
entry; a run the backend refuses at its handover is failed after the
commit, in a transaction of its own.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from runs import notify, states
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


# The runs waiting for a slot of the key, oldest first (the waiting index's
# order), as many as its free slots (its limit less the runs counted from
# the slot index), skipping any another transaction holds (a cancel). The
# function of migration 0010 picks them the same way.
_WAITING_SQL = """
SELECT * FROM runs_run
 WHERE concurrency_key = %(key)s AND status = 'pending' AND waiting_for IS NOT NULL
   AND waiting_for ->> 'reason' = %(reason)s
 ORDER BY created_at
 LIMIT GREATEST(0, (SELECT "limit" FROM runs_concurrencykey WHERE key = %(key)s) - (
     SELECT count(*) FROM runs_run
      WHERE concurrency_key = %(key)s
        AND (status = 'running' OR (status = 'pending' AND waiting_for IS NULL))))
   FOR UPDATE SKIP LOCKED
"""


def hand_over_waiting(key: str, mode: str, now: datetime) -> tuple[int, list[Run]] | None:
    """On PostgreSQL, at the end of the transaction that freed a slot of the
    key: try the key's row (never wait for it) and, if it was free, pick the
    runs of `waiting_for_free_slots` and hand over those of `mode` (a backend
    that sends after the commit), in one round trip (the function of
    migration 0010: two statements, so that the count's snapshot follows the
    lock). None when another transaction holds the row; else how many were
    picked, and the runs handed over, oldest first, with what their queue
    entries need (id, spec, createdAt, priority); the others stay locked."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT picked_count, handed_runs FROM runs_hand_over_freed_slot(%s, %s, %s, %s, %s)",
            [key, CONCURRENCY, mode, now, notify.CHANNEL],
        )
        picked, rows = cursor.fetchone()
    if picked is None:
        return None
    rows = json.loads(rows) if isinstance(rows, str) else rows or []
    handed = [
        Run(
            id=uuid.UUID(run_id),
            mode=mode,
            spec=spec,
            created_at=datetime.fromisoformat(created_at),
            priority=level,
            concurrency_key=key,
        )
        for run_id, spec, created_at, level in rows
    ]
    return int(picked), handed


def lock_waiting(key: str) -> list[Run]:
    """In the transaction that hands them over: lock the key, then the runs
    waiting for its free slots (`waiting_for_free_slots`)."""
    if lock_key(key) is None:
        return []
    return waiting_for_free_slots(key)


def waiting_for_free_slots(key: str) -> list[Run]:
    """With the key's row locked: oldest first, skipping any another
    transaction holds (a cancel), the runs waiting for as many slots as are free."""
    # Its own statement, not part of the locking one: under READ COMMITTED a
    # statement's snapshot is taken before it waits for the lock, so a count
    # in the locking statement would miss what the previous holder committed.
    if connection.vendor == "postgresql":
        return list(Run.objects.raw(_WAITING_SQL, {"key": key, "reason": CONCURRENCY}))
    row = ConcurrencyKey.objects.get(key=key)
    free = row.limit - active_count(key)
    if free <= 0:
        return []
    waiting = Run.objects.filter(HELD, concurrency_key=key, waiting_for__reason=CONCURRENCY)
    return list(waiting.order_by("created_at").select_for_update()[:free])


def keys_with_free_slots() -> list[str]:
    """The keys that have runs waiting for a slot and a slot free: what a
    handover lost with its process leaves behind. Reads each key's two
    partial indexes, never the waiting runs themselves."""
    waiting = Run.objects.filter(HELD, concurrency_key=OuterRef("key"), waiting_for__reason=CONCURRENCY)
    busy = (
        Run.objects.filter(ACTIVE, concurrency_key=OuterRef("key"))
        .order_by()
        .values("concurrency_key")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return list(
        ConcurrencyKey.objects.annotate(has_waiting=Exists(waiting), busy=Coalesce(Subquery(busy), 0))
        .filter(has_waiting=True, busy__lt=F("limit"))
        .order_by("key")
        .values_list("key", flat=True)
    )
