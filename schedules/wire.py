"""Schedules to camelCase JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from runs.wire import format_ts
from schedules.models import Schedule, ScheduleTick

NEXT_FIRE_TIMES = 5

# The run template's admission fields, by their wire names (as on POST /runs).
ADMISSION_FIELDS = ("retry", "concurrency", "dependsOn", "priority")


def next_fire_times(
    schedule: Schedule, count: int = NEXT_FIRE_TIMES, *, now: datetime | None = None
) -> list[str]:
    """The ticks to come, from `next_fire_at` on, or from the first whose run
    was made ahead and waits for it (none while paused)."""
    first = schedule.first_to_come(now or timezone.now())
    if first is None:
        return []
    return [format_ts(tick) or "" for tick in schedule.timing.upcoming(first, count)]


def schedule_to_wire(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": str(schedule.id),
        "name": schedule.name,
        "owner": schedule.owner,
        "cron": schedule.cron,
        "intervalSeconds": schedule.interval_seconds,
        "timezone": schedule.timezone,
        "mode": schedule.mode,
        "spec": schedule.spec,
        "metadata": schedule.metadata or {},
        **{name: (schedule.admission or {}).get(name) for name in ADMISSION_FIELDS},
        "overlap": schedule.overlap,
        "catchup": schedule.catchup,
        "paused": schedule.paused,
        "startAt": format_ts(schedule.start_at),
        "endAt": format_ts(schedule.end_at),
        "nextFireTimes": next_fire_times(schedule),
        "lastFiredAt": format_ts(schedule.last_fired_at),
        "lastRunId": str(schedule.last_run_id) if schedule.last_run_id else None,
        "createdAt": format_ts(schedule.created_at),
        "updatedAt": format_ts(schedule.updated_at),
    }


def tick_to_wire(record: ScheduleTick) -> dict[str, Any]:
    return {
        "tick": format_ts(record.tick),
        "lastTick": format_ts(record.last_tick),
        "outcome": record.outcome,
        "reason": record.reason or None,
        "runId": str(record.run_id) if record.run_id else None,
        "at": format_ts(record.created_at),
    }
