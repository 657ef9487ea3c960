"""Writing the run journal. `runs.services` calls `record` for every run change,
inside the change's transaction.

Ids come from the one `Clock` row: taking it (an UPDATE) locks the row until
the transaction ends, and PostgreSQL releases row locks only after the commit
is visible. The next writer can take the next id only after that, so ids
become visible in increasing order, and a rolled-back writer gives its id
back (the UPDATE is undone): ids have no gaps but those retention makes.

The lock serialises the commits of run changes. That is cheap because
`record` is the last statement of each change (the lock is held for one
round trip and the commit), and because the NOTIFY every run change already
sends serialises commits the same way (PostgreSQL queues notifications in
commit order under one lock). A transaction that records changes of several
runs must lock all of them before its first `record`: a run lock taken while
holding the clock could deadlock with a writer waiting for the clock. (A
lock that is only tried, SKIP LOCKED, waits for nobody and may come after:
runs.concurrency.)
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from audit import services as audit
from journal.models import Clock, Entry
from runs import metrics, notify
from runs.models import Run
from runs.wire import run_to_wire

logger = logging.getLogger("journal.services")

CREATED = "run.created"
RUNNING = "run.running"
COMPLETED = "run.completed"
FAILED = "run.failed"
CANCELED = "run.canceled"
RETRYING = "run.retrying"
TYPES = (CREATED, RUNNING, COMPLETED, FAILED, CANCELED, RETRYING)
FINAL_TYPES = (COMPLETED, FAILED, CANCELED)


def status_type(status: str) -> str:
    """The entry type of a change to `status` (run.running, run.completed, ...)."""
    return f"run.{status}"


# The clock row creates itself (a flushed or restored table starts after the
# newest entry), so no data migration or fixture has to exist for it.
# The run change's audit row goes in the same statement: one round trip less
# per change (PostgreSQL runs a data-modifying WITH whether or not it is read).
_RECORD_SQL = """
WITH audit_row AS (
    INSERT INTO audit_auditevent (at, actor, action, target_type, target_id, owner, request_id, ip, details)
    VALUES (%(audit_at)s, %(audit_actor)s, %(audit_action)s, %(audit_target_type)s, %(audit_target_id)s,
            %(audit_owner)s, %(audit_request_id)s, %(audit_ip)s, %(audit_details)s::jsonb)
), tick AS (
    INSERT INTO journal_clock (id, last_id)
    VALUES (1, (SELECT COALESCE(MAX(id), 0) + 1 FROM journal_entry))
    ON CONFLICT (id) DO UPDATE SET last_id = journal_clock.last_id + 1
    RETURNING last_id
), entry AS (
    INSERT INTO journal_entry (id, at, type, run_id, status, owner, mode, schedule_id, run)
    SELECT last_id, %(at)s, %(type)s, %(run_id)s, %(status)s, %(owner)s, %(mode)s,
           %(schedule_id)s, %(run)s::jsonb
      FROM tick
    RETURNING id
)
SELECT id, pg_notify(%(channel)s, id::text) FROM entry
"""


def _entry_fields(run: Run, wire: dict[str, Any], entry_type: str, at: datetime) -> dict[str, Any]:
    """An entry's columns but its id and its copy of the run."""
    return {
        "at": at,
        "type": entry_type,
        "run_id": run.id,
        "status": run.status,
        "owner": run.owner,
        "mode": run.mode,
        "schedule_id": wire.get("scheduleId"),
    }


def record(run: Run, entry_type: str, *, at: datetime | None = None) -> int:
    """Journal a change of `run` (already saved); returns the entry id.

    Call it as the last statement of the change's transaction (see above).
    The change's audit entry is written here too: in the same statement on
    PostgreSQL, just before it elsewhere.
    """
    wire = run_to_wire(run)
    fields = _entry_fields(run, wire, entry_type, at or run.updated_at)
    audit_row = audit.run_change_row(run, entry_type)
    if connection.vendor == "postgresql":
        entry_id = _record_postgresql(fields, wire, audit_row)
    else:
        entry_id = _record_portable(fields, wire, audit_row)
    transaction.on_commit(lambda: metrics.JOURNAL_ENTRIES.labels(type=entry_type).inc())
    return entry_id


# The same rules for many runs at once: one clock step of n, one statement.
_RECORD_MANY_SQL = """
WITH tick AS (
    INSERT INTO journal_clock (id, last_id)
    VALUES (1, (SELECT COALESCE(MAX(id), 0) + %(n)s FROM journal_entry))
    ON CONFLICT (id) DO UPDATE SET last_id = journal_clock.last_id + %(n)s
    RETURNING last_id
), entry AS (
    INSERT INTO journal_entry (id, at, type, run_id, status, owner, mode, schedule_id, run)
    SELECT tick.last_id - %(n)s + r.ord, r.at, r.type, r.run_id, r.status, r.owner, r.mode,
           r.schedule_id, r.run
      FROM tick, jsonb_to_recordset(%(rows)s::jsonb) AS r(
           ord int, at timestamptz, type text, run_id uuid, status text, owner text, mode text,
           schedule_id uuid, run jsonb)
    RETURNING id
)
SELECT pg_notify(%(channel)s, max(id)::text) FROM entry
"""


def record_many(runs: list[Run], entry_type: str) -> None:
    """`record` for many runs changed in one transaction (saved, and locked
    or new): ids in the list's order, one statement. Call it last, as `record`."""
    if not runs:
        return
    if connection.vendor != "postgresql":
        for run in runs:
            record(run, entry_type, at=run.created_at if entry_type == CREATED else run.updated_at)
        return
    audit.record_run_changes(runs, entry_type)
    rows = []
    for ord_, run in enumerate(runs, start=1):
        wire = run_to_wire(run)
        at = run.created_at if entry_type == CREATED else run.updated_at
        rows.append({"ord": ord_, **_entry_fields(run, wire, entry_type, at), "run": wire})
    params = {
        "n": len(rows),
        "rows": json.dumps(rows, cls=DjangoJSONEncoder),
        "channel": notify.JOURNAL_CHANNEL,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_MANY_SQL, params)
    count = len(rows)
    transaction.on_commit(lambda: metrics.JOURNAL_ENTRIES.labels(type=entry_type).inc(count))


def _record_postgresql(fields: dict[str, Any], wire: dict[str, Any], audit_row: dict[str, Any]) -> int:
    params = {**fields, "run": json.dumps(wire, cls=DjangoJSONEncoder), "channel": notify.JOURNAL_CHANNEL}
    params.update({f"audit_{name}": value for name, value in audit_row.items()})
    params["audit_details"] = json.dumps(audit_row["details"], cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_SQL, params)
        (entry_id, _) = cursor.fetchone()
    return int(entry_id)


def _record_portable(fields: dict[str, Any], wire: dict[str, Any], audit_row: dict[str, Any]) -> int:
    """The same rules through the ORM (SQLite, where a writing transaction
    holds the database's write lock until it ends)."""
    with transaction.atomic():
        audit.insert_row(audit_row)
        entry_id = _tick()
        Entry.objects.create(id=entry_id, run=wire, **fields)
        notify.send(notify.JOURNAL_CHANNEL, str(entry_id))
    return entry_id


def _tick() -> int:
    while True:
        if Clock.objects.filter(pk=1).update(last_id=F("last_id") + 1):
            return Clock.objects.values_list("last_id", flat=True).get(pk=1)
        start = (Entry.objects.aggregate(newest=Max("id"))["newest"] or 0) + 1
        try:
            with transaction.atomic():
                Clock.objects.create(pk=1, last_id=start)
            return start
        except IntegrityError:
            continue  # another writer created it first: take the next one


def prune(*, older_than: timedelta, batch_size: int = 1000, dry_run: bool = False) -> Iterator[int]:
    """Delete the entries written more than `older_than` ago; yields each batch's count.

    Only the oldest entries go, as a prefix in id order: the journal keeps
    every entry from its oldest one on, so a reader resuming before that
    oldest id knows it missed entries (`event: reset`). Each batch is a
    short transaction of its own.
    """
    cutoff = timezone.now() - older_than
    after = 0
    while True:
        rows = list(Entry.objects.filter(id__gt=after).order_by("id").values_list("id", "at")[:batch_size])
        prefix = list(itertools.takewhile(lambda row: row[1] < cutoff, rows))
        if prefix:
            last = prefix[-1][0]
            if dry_run:
                after = last
            else:
                with transaction.atomic():
                    Entry.objects.filter(id__lte=last).delete()
            logger.info(
                "journal pruned", extra={"event": "journal_pruned", "entries": len(prefix), "dryRun": dry_run}
            )
            yield len(prefix)
        if len(prefix) < batch_size:
            return
