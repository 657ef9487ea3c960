"""Every read of runs and checkpoints that the API and commands share."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

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


def get_run(run_id: Any) -> Run | None:
    try:
        return Run.objects.filter(pk=uuid.UUID(str(run_id))).first()
    except ValueError:
        return None


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
