"""The admin dashboard's "Schedules due next" panel."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from runs.dashboard_panels import Panel, Row
from schedules.models import Schedule

SHOWN = 5


def due_next() -> Panel:
    now = timezone.now()
    due = Schedule.objects.filter(paused=False, next_fire_at__isnull=False).order_by("next_fire_at", "id")[
        :SHOWN
    ]
    rows = []
    for schedule in due:
        assert schedule.next_fire_at is not None
        seconds = (schedule.next_fire_at - now).total_seconds()
        when = f"in {seconds:.0f} s" if seconds >= 0 else f"due {-seconds:.0f} s ago"
        href = reverse("admin:schedules_schedule_change", args=[schedule.pk])
        rows.append(
            Row(
                label=schedule.name, value=f"{schedule.next_fire_at:%Y-%m-%d %H:%M:%S} UTC, {when}", href=href
            )
        )
    return Panel(key="schedules", title="Schedules due next", rows=rows, empty="no active schedule")
