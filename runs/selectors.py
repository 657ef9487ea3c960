"""Every read of runs and checkpoints that the API and commands share."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.lookups import Exact

from runs import states
from runs.exceptions import BadParameter
from runs.models import HELD, Checkpoint, Run
from runs.wire import format_ts, parse_ts


@dataclass(frozen=True)
class RunFilters:
    statuses: tuple[str, ...] = ()
    mode: str | None = None
    owner: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    schedule_id: uuid.UUID | None = None


def encode_cursor(row: Any) -> str:
    """The cursor after `row`, any record with `created_at` and a UUID `id`."""
    raw = f"{format_ts(row.created_at)}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, run_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return parse_ts(created), uuid.UUID(run_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", "not a cursor this API returned") from None


def list_runs(filters: RunFilters, *, limit: int, cursor: str | None = None) -> tuple[list[Run], str | None]:
    """Newest first, keyset-paginated (`newest_first_page`)."""
    queryset = Run.objects.all()
    if filters.statuses:
        queryset = queryset.filter(status__in=filters.statuses)
    if filters.mode:
        queryset = queryset.filter(mode=filters.mode)
    if filters.owner is not None:
        queryset = queryset.filter(owner=filters.owner)
    if filters.created_after:
        queryset = queryset.filter(created_at__gt=filters.created_after)
    if filters.created_before:
        queryset = queryset.filter(created_at__lt=filters.created_before)
    if filters.schedule_id:
        queryset = queryset.filter(schedule_id=filters.schedule_id)
    return newest_first_page(queryset, limit=limit, cursor=cursor)


def newest_first_page(
    queryset: QuerySet[Any], *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of records newest first, keyset-paginated on (created_at, id)
    so pages never skip or repeat a record."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=row_id))
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def get_run(run_id: Any, *, for_update: bool = False) -> Run | None:
    """The run, or None; an id that is not a UUID names no run.

    The one way to read a run by id: the API, the services (locked, with
    `for_update`), the event stream and the commands all come here."""
    try:
        pk = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        return None
    queryset = Run.objects.select_for_update() if for_update else Run.objects
    return queryset.filter(pk=pk).first()


def run_status(run_id: Any) -> str | None:
    """The run's status alone, or None when there is no such run."""
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()


def run_statuses(run_ids: Iterable[Any]) -> dict[str, str]:
    """Status by run id (as text) for those of `run_ids` that exist, in one query."""
    return {
        str(run_id): status
        for run_id, status in Run.objects.filter(pk__in=run_ids).values_list("id", "status")
    }


def open_k8s_attempts(created_before: datetime) -> set[tuple[str, int]]:
    """(run id, attempt) of Kubernetes runs pending or running, handed over
    (held runs have no Job yet, by design) and created before the cutoff."""
    return {
        (str(run_id), attempt)
        for run_id, attempt in Run.objects.filter(
            mode=Run.Mode.K8S, status__in=(states.PENDING, states.RUNNING), created_at__lt=created_before
        )
        .exclude(HELD)
        .values_list("id", "attempt")
    }


def checkpoints_after(run_id: Any, since: datetime | None, limit: int) -> list[Checkpoint]:
    """Up to `limit` checkpoints after `since` (all when None), oldest first."""
    queryset = Checkpoint.objects.filter(run_id=run_id)
    if since is not None:
        queryset = queryset.filter(ts__gt=since)
    return list(queryset.order_by("ts")[:limit])


def nth_newest_checkpoint_ts(run_id: Any, n: int) -> datetime | None:
    """The ts of the (n+1)-th newest checkpoint: the newest `n` come after it."""
    newest = Checkpoint.objects.filter(run_id=run_id).order_by("-ts").values_list("ts", flat=True)
    return newest[n : n + 1].first()


# A label key usable as a JSON path step; others are matched as text.
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
_ID_PREFIX = re.compile(r"^[0-9a-fA-F][0-9a-fA-F-]{2,35}$")


def label_query(term: str) -> Q:
    """Runs whose `metadata["labels"]` match: `team` finds a list label or a dict
    key, `team=ml` a dict entry. The same lookups on PostgreSQL and SQLite:
    a key path for `key=value`, `has_key` for a key, and containment (PostgreSQL)
    or the JSON text (SQLite, which has no containment) for a list item."""
    key, sep, value = term.partition("=")
    if sep:
        if _LABEL_KEY.match(key) and "__" not in key:
            return Q(Exact(KT(f"metadata__labels__{key}"), value))
        return Q(pk__in=[])
    by_key = Q(metadata__labels__has_key=term)
    if connection.features.supports_json_field_contains:
        return by_key | Q(metadata__labels__contains=[term])
    return by_key | Q(metadata__labels__icontains=json.dumps(term))


def id_prefix_query(term: str) -> Q | None:
    """Runs whose id starts with `term` (hex, dashes optional), for a term that can be one."""
    if not _ID_PREFIX.match(term):
        return None
    return Q(id__istartswith=term.lower())


def list_checkpoints(
    run: Run, *, after: datetime | None = None, limit: int = 100
) -> tuple[list[Checkpoint], str | None]:
    """Oldest first, from just after the `after` timestamp."""
    queryset = Checkpoint.objects.filter(run_id=run.id)
    if after is not None:
        queryset = queryset.filter(ts__gt=after)
    checkpoints = list(queryset.order_by("ts")[: limit + 1])
    next_cursor = format_ts(checkpoints[limit - 1].ts) if len(checkpoints) > limit else None
    return checkpoints[:limit], next_cursor


def last_checkpoints(run: Run, count: int) -> list[Checkpoint]:
    """The newest `count` checkpoints, oldest first (the stream's default replay)."""
    if count <= 0:
        return []
    newest = list(Checkpoint.objects.filter(run_id=run.id).order_by("-ts")[:count])
    return newest[::-1]


def redis_runs_in(statuses: tuple[str, ...]) -> Any:
    """Redis-mode runs with a spec in these statuses, oldest first (what a sweep checks)."""
    return (
        Run.objects.filter(mode="redis", status__in=statuses, spec__isnull=False)
        .exclude(HELD)
        .order_by("created_at")
        .only("id", "mode", "status", "spec", "created_at", "attempt")
    )


def statuses_of(run_ids: list[str]) -> dict[str, tuple[str, int]]:
    """{run id: (status, attempt)} for these runs."""
    rows = Run.objects.filter(pk__in=run_ids).values_list("id", "status", "attempt")
    return {str(pk): (status, attempt) for pk, status, attempt in rows}


def held_counts() -> dict[str, int]:
    """How many pending runs an admission gate holds, by the gate's reason.
    One grouped count over the held runs (the partial index on pending runs'
    `not_before` does not cover it, but held runs are a small part of the
    table, and the scrape that asks is rare)."""
    return dict(
        Run.objects.filter(HELD)
        .values_list("waiting_for__reason")
        .order_by()
        .annotate(count=Count("id"))
        .values_list("waiting_for__reason", "count")
    )
