"""Pause a schedule: it makes no runs, and records no ticks, until resumed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from audit.commands import AuditedCommand
from schedules import services
from schedules.management.schedule_options import schedule_or_error


class Command(AuditedCommand):
    help = (
        "Pause a schedule: no ticks at all while paused (`schedules_resume` starts again from the next tick)."
    )
    paused = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schedule_id", help="the schedule's id (a UUID)")

    def handle(self, *args: Any, **opts: Any) -> None:
        schedule = services.set_paused(schedule_or_error(opts["schedule_id"]).id, self.paused)
        state = "paused" if schedule.paused else f"resumed; next fire {schedule.next_fire_at or '-'}"
        self.stdout.write(f"{schedule.id}: {state}")
