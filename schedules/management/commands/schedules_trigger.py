"""Make a run from a schedule's template now, as `POST /schedules/{id}/trigger` does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from runs.exceptions import BackendUnavailable
from runs.management import render
from runs.wire import run_to_wire
from schedules import services
from schedules.management.schedule_options import schedule_or_error


class Command(AuditedCommand):
    help = (
        "Make one run from the schedule's template now (whatever its ticks, pause or overlap); "
        "prints the run id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schedule_id", help="the schedule's id (a UUID)")
        parser.add_argument("--json", action="store_true", help='print {"runId", "run"} instead of the id')

    def handle(self, *args: Any, **opts: Any) -> None:
        schedule = schedule_or_error(opts["schedule_id"])
        try:
            run = services.trigger_schedule(schedule.id)
        except BackendUnavailable as exc:
            raise CommandError(f"no run made: {exc.message}") from None
        if opts["json"]:
            self.stdout.write(render.json_line({"runId": str(run.id), "run": run_to_wire(run)}))
        else:
            self.stdout.write(str(run.id))
