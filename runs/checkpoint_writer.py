"""Appending checkpoints: the ingest hot path.

Writers of one run are serialised by the run's row, so seq has no gaps, ts
strictly increases (a clock step back, or two appends in one microsecond,
still get distinct ordered stamps) and commits happen in seq order: a
reader never sees seq N+1 before N.

On PostgreSQL the whole append is one statement: the UPDATE of the run row
takes its lock, advances the counters and sends the wake-up; the INSERT
takes seq and ts from what the UPDATE returned. One round trip, and under
autocommit one transaction, instead of six. Elsewhere (SQLite, the embedded
default) the same rules run through the ORM under a row lock.

Checkpoint keys make a retried append store nothing new. Appends without
keys take the path above unchanged. With keys, a batch is first reduced to
the keys the run does not hold yet (one indexed read), and only those are
appended; a key that arrives twice at once meets the partial unique index,
and the loser reads again and answers what the winner stored.

`append_together` stores the appends of many requests, to many runs, in
one statement (group commit): each run's row is locked once, in id order
(two groups locking the same runs cannot deadlock), and each request's
checkpoints take the next seqs of their run in the order the requests
came. A request is stored whole or not at all, and one the statement
leaves out (its run missing or final, or a key its run already holds) is
for the caller to append on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from runs import notify, states
from runs.models import Checkpoint, Run

ONE_MICROSECOND = timedelta(microseconds=1)
_FINAL = tuple(sorted(states.FINAL_STATUSES))
# The final statuses as an SQL list, for `status NOT IN (...)`: fixed names, no input.
_FINAL_SQL = ", ".join(f"'{status}'" for status in _FINAL)

# One row (none when the run refused): the counters the UPDATE set and the
# new rows' ids in seq order. Each checkpoint's seq and ts follow from the
# counters as in the INSERT; a hundred timestamps read back and parsed cost
# the worker more than the rest of the statement's answer.
_APPEND_SQL = f"""
WITH run AS (
    UPDATE runs_run
       SET checkpoint_count = checkpoint_count + %(n)s,
           last_checkpoint_ts = GREATEST(clock_timestamp(), last_checkpoint_ts + interval '1 microsecond')
                                + (%(n)s - 1) * interval '1 microsecond',
           updated_at = clock_timestamp()
     WHERE id = %(run_id)s AND status NOT IN ({_FINAL_SQL})
 RETURNING id, checkpoint_count, last_checkpoint_ts, pg_notify(%(channel)s, %(run_id_text)s)
),
stored AS (
    INSERT INTO runs_checkpoint (run_id, seq, ts, type, data, key)
    SELECT run.id,
           run.checkpoint_count - %(n)s + item.k,
           run.last_checkpoint_ts - (%(n)s - item.k) * interval '1 microsecond',
           item.e ->> 'type',
           NULLIF(item.e -> 'data', 'null'::jsonb),
           item.e ->> 'key'
      FROM run, jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS item(e, k)
 RETURNING id, seq
)
SELECT run.checkpoint_count, run.last_checkpoint_ts, (SELECT array_agg(id ORDER BY seq) FROM stored)
  FROM run
"""  # noqa: S608 - the only interpolation is the fixed list of final statuses


_GROUP_SQL = f"""
WITH item AS (
    SELECT (x ->> 'r')::uuid AS run_id, (x ->> 'q')::int AS q, x -> 'e' AS e, k
      FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS t(x, k)
),
fresh AS (
    SELECT item.*, row_number() OVER (PARTITION BY item.run_id ORDER BY item.k) AS i
      FROM item
     WHERE {{held}}
),
counts AS (
    SELECT run_id, count(*) AS n FROM fresh GROUP BY run_id
),
locked AS (
    SELECT r.id, counts.n
      FROM runs_run r JOIN counts ON counts.run_id = r.id
     WHERE r.status NOT IN ({_FINAL_SQL})
     ORDER BY r.id
       FOR UPDATE OF r
),
run AS (
    UPDATE runs_run r
       SET checkpoint_count = r.checkpoint_count + locked.n,
           last_checkpoint_ts = GREATEST(clock_timestamp(), r.last_checkpoint_ts + interval '1 microsecond')
                                + (locked.n - 1) * interval '1 microsecond',
           updated_at = clock_timestamp()
      FROM locked
     WHERE r.id = locked.id AND r.status NOT IN ({_FINAL_SQL})
 RETURNING r.id, r.checkpoint_count - locked.n AS base, r.last_checkpoint_ts, locked.n,
           pg_notify(%(channel)s, r.id::text)
),
stored AS (
    INSERT INTO runs_checkpoint (run_id, seq, ts, type, data, key)
    SELECT run.id,
           run.base + fresh.i,
           run.last_checkpoint_ts - (run.n - fresh.i) * interval '1 microsecond',
           fresh.e ->> 'type',
           NULLIF(fresh.e -> 'data', 'null'::jsonb),
           fresh.e ->> 'key'
      FROM run JOIN fresh ON fresh.run_id = run.id
 RETURNING id, run_id, seq, ts
)
SELECT fresh.k, stored.id, stored.seq, stored.ts
  FROM stored
  JOIN run ON run.id = stored.run_id
  JOIN fresh ON fresh.run_id = stored.run_id AND fresh.i = stored.seq - run.base
"""  # noqa: S608 - interpolated: the fixed list of final statuses, and one of the two filters below
# A request any of whose keys its run holds is left out whole (it is a replay,
# or a conflict, for the one-request path to answer).
_GROUP_ALL = _GROUP_SQL.replace("{held}", "true")
_GROUP_UNHELD = _GROUP_SQL.replace(
    "{held}",
    """item.q NOT IN (
           SELECT held.q FROM item held JOIN runs_checkpoint c
               ON c.run_id = held.run_id AND c.key = held.e ->> 'key'
       )""",
)


@dataclass(slots=True)
class Appended:
    """A checkpoint as its append stored it, with a Checkpoint's field names.

    A batch answers with hundreds of these; building model instances for
    them cost more than the statement that stored them. Not frozen: a frozen
    dataclass sets each field through object.__setattr__, which made one
    cost seven times as much (1.4 against 0.2 µs); nothing changes them.
    """

    pk: int
    run_id: Any
    seq: int
    ts: datetime
    type: str
    data: Any
    key: str | None = None
    # Stored by an earlier append with the same key; this one stored nothing.
    replayed: bool = False


class AppendRefused(Exception):
    """No row took the append: the run is missing (status None) or final."""

    def __init__(self, status: str | None) -> None:
        super().__init__(status)
        self.status = status


class KeyConflict(Exception):
    """A key the run (or the same batch) holds for another type or data."""

    def __init__(self, key: str, stored: Appended | None) -> None:
        super().__init__(key)
        self.key = key
        self.stored = stored


def append(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    """Store the items in order; each keyed item the run already holds is
    answered by the stored checkpoint (`replayed`) instead."""
    if not any(item.get("key") is not None for item in items):
        return _store(run_id, items)
    for attempt in range(KEY_RACE_RETRIES):
        try:
            return _append_keyed(run_id, items)
        except IntegrityError:
            # A concurrent append stored one of these keys after our read:
            # read again, and answer what it stored.
            if attempt == KEY_RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


KEY_RACE_RETRIES = 3


def _store(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    if connection.vendor == "postgresql":
        return _append_postgresql(run_id, items)
    return _append_portable(run_id, items)


def _same_content(item: dict[str, Any], kind: str, data: Any) -> bool:
    return item["type"] == kind and item.get("data") == data


def _append_keyed(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    keys = {item["key"] for item in items if item.get("key") is not None}
    held = {
        row["key"]: Appended(**row, run_id=run_id, replayed=True)
        for row in Checkpoint.objects.filter(run_id=run_id, key__in=keys).values(
            "pk", "seq", "ts", "type", "data", "key"
        )
    }
    fresh: list[dict[str, Any]] = []
    first_of: dict[str, dict[str, Any]] = {}
    for item in items:
        key = item.get("key")
        if key is not None and key in held:
            if not _same_content(item, held[key].type, held[key].data):
                raise KeyConflict(key, held[key])
        elif key is not None and key in first_of:
            earlier = first_of[key]
            if not _same_content(item, earlier["type"], earlier.get("data")):
                raise KeyConflict(key, None)
        else:
            if key is not None:
                first_of[key] = item
            fresh.append(item)
    if not fresh:  # every key held: the run exists, whatever its status now
        return [held[item["key"]] for item in items]
    if connection.in_atomic_block:
        with transaction.atomic():  # a savepoint: a lost key race leaves the caller's transaction usable
            stored = _store(run_id, fresh)
    else:
        stored = _store(run_id, fresh)  # one statement, its own transaction
    answers = iter(stored)
    result: list[Appended] = []
    for item in items:
        key = item.get("key")
        if key is None:
            result.append(next(answers))
        elif key not in held:
            held[key] = replace(appended := next(answers), replayed=True)
            result.append(appended)
        else:
            result.append(held[key])  # stored before, or earlier in this batch
    return result


def _prepared_cursor() -> Any:
    """A cursor whose statements the server parses and plans once per
    connection: their parameters are sent apart (Django's cursors write them
    into the text), and psycopg prepares each text on its first run.

    For `_APPEND_SQL` alone: the same text on every batch, whose planning and
    parsing took about a quarter of what the server spent on a batch of 100.
    Django leaves preparing off on its connections (for poolers that move a
    session's statements between server connections, which this service does
    not sit behind); its own cursors bind on the client and never prepare.
    """
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = 0
    cursor = psycopg.Cursor(raw)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)


def _append_postgresql(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    payload = [_payload(item) for item in items]
    with _prepared_cursor() as cursor:
        cursor.execute(
            _APPEND_SQL,
            {
                "n": len(items),
                "run_id": run_id,
                "run_id_text": str(run_id),
                "channel": notify.CHANNEL,
                "items": json.dumps(payload, separators=(",", ":")),
            },
        )
        stored = cursor.fetchone()
    if stored is None:
        raise AppendRefused(Run.objects.filter(pk=run_id).values_list("status", flat=True).first())
    count, last_ts, ids = stored
    first_seq, last = count - len(items) + 1, len(items) - 1
    return [
        Appended(
            pk, run_id, first_seq + i, last_ts - timedelta(microseconds=last - i),
            item["type"], item.get("data"), item.get("key"),
        )
        for i, (pk, item) in enumerate(zip(ids, items, strict=True))
    ]  # fmt: skip


def append_together(requests: list[tuple[Any, list[dict[str, Any]]]]) -> list[list[Appended] | None]:
    """Each request (a run's primary key and its items) stored in one
    statement, in one transaction; None for a request left out (see above).

    The caller keeps a key from appearing in two requests of one run, or
    twice in one request: the unique index would refuse the whole statement.
    Elsewhere than on PostgreSQL every request is left out.
    """
    if connection.vendor != "postgresql":
        return [None] * len(requests)
    if connection.in_atomic_block:
        with transaction.atomic():  # a savepoint: a refused statement leaves the caller's transaction usable
            return _append_together(requests)
    return _append_together(requests)  # one statement, its own transaction


def _append_together(requests: list[tuple[Any, list[dict[str, Any]]]]) -> list[list[Appended] | None]:
    rows: list[dict[str, Any]] = []
    origin: list[tuple[int, int]] = []
    keyed = False
    for q, (run_id, items) in enumerate(requests):
        text = str(run_id)
        for position, item in enumerate(items):
            payload = _payload(item)
            keyed = keyed or "key" in payload
            rows.append({"r": text, "q": q, "e": payload})
            origin.append((q, position))
    with connection.cursor() as cursor:
        cursor.execute(
            _GROUP_UNHELD if keyed else _GROUP_ALL,
            {"channel": notify.CHANNEL, "items": json.dumps(rows, separators=(",", ":"))},
        )
        stored = cursor.fetchall()
    by_request: dict[int, dict[int, Appended]] = {}
    for k, pk, seq, ts in stored:
        q, position = origin[k - 1]
        run_id, items = requests[q]
        item = items[position]
        by_request.setdefault(q, {})[position] = Appended(
            pk, run_id, seq, ts, item["type"], item.get("data"), item.get("key")
        )
    return [
        [got[position] for position in range(len(items))] if (got := by_request.get(q)) else None
        for q, (_, items) in enumerate(requests)
    ]


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    payload = {"type": item["type"], "data": item.get("data")}
    if item.get("key") is not None:
        payload["key"] = item["key"]
    return payload


def _append_portable(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_final:
            raise AppendRefused(run.status if run else None)
        now = timezone.now()
        ts = run.last_checkpoint_ts
        seq = run.checkpoint_count
        rows = []
        for item in items:
            ts = now if ts is None or now > ts else ts + ONE_MICROSECOND
            seq += 1
            rows.append(
                Checkpoint(
                    run_id=run.id,
                    seq=seq,
                    ts=ts,
                    type=item["type"],
                    data=item.get("data"),
                    key=item.get("key"),
                )
            )
        Checkpoint.objects.bulk_create(rows)
        Run.objects.filter(pk=run.id).update(checkpoint_count=seq, last_checkpoint_ts=ts, updated_at=now)
        notify.run_changed(str(run.id))
    return [Appended(row.pk, row.run_id, row.seq, row.ts, row.type, row.data, row.key) for row in rows]
