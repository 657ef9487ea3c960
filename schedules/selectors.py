"""Reads of schedules and their ticks shared by the API, admin and commands."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from runs.models import Run
from runs.selectors import newest_first_page
from schedules.models import Schedule, ScheduleTick


@dataclass(frozen=True)
class ScheduleFilters:
    owner: str | None = None
    paused: bool | None = None


def list_schedules(
    filters: ScheduleFilters, *, limit: int, cursor: str | None = None
) -> tuple[list[Schedule], str | None]:
    """Newest first, keyset-paginated on (createdAt, id)."""
    queryset = Schedule.objects.all()
    if filters.owner is not None:
        queryset = queryset.filter(owner=filters.owner)
    if filters.paused is not None:
        queryset = queryset.filter(paused=filters.paused)
    return newest_first_page(queryset, limit=limit, cursor=cursor)


def get_schedule(schedule_id: Any) -> Schedule | None:
    try:
        return Schedule.objects.filter(pk=uuid.UUID(str(schedule_id))).first()
    except ValueError:
        return None


def recent_ticks(schedule: Schedule, limit: int = 20) -> list[ScheduleTick]:
    return list(ScheduleTick.objects.filter(schedule=schedule).order_by("-tick")[:limit])


def recent_skips(schedule: Schedule, limit: int = 20) -> list[ScheduleTick]:
    return list(
        ScheduleTick.objects.filter(schedule=schedule, outcome=ScheduleTick.Outcome.SKIPPED).order_by(
            "-tick"
        )[:limit]
    )


def recent_runs(schedule: Schedule, limit: int = 20) -> list[Run]:
    return list(Run.objects.filter(schedule_id=schedule.id).order_by("-created_at", "-id")[:limit])
