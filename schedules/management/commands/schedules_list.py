"""List schedules, newest first, with the same filters as `GET /schedules`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from runs.exceptions import BadParameter
from runs.management import render
from runs.management.base import OrchestratorCommand
from schedules import selectors
from schedules.management.schedule_options import LIST_HEADER, row
from schedules.wire import schedule_to_wire


class Command(OrchestratorCommand):
    help = (
        "List schedules, newest first, with their next fire time and last tick. Filters match GET /schedules."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner")
        parser.add_argument(
            "--paused", choices=("true", "false"), help="only paused, or only active, schedules"
        )
        parser.add_argument("--limit", type=int, default=50, help="1..200, default 50")
        parser.add_argument("--cursor", help="the next-page cursor a previous listing printed")
        parser.add_argument("--json", action="store_true", help="one wire-format schedule per line")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 1 <= opts["limit"] <= 200:
            raise CommandError("--limit must be between 1 and 200")
        paused = None if opts["paused"] is None else opts["paused"] == "true"
        filters = selectors.ScheduleFilters(owner=opts["owner"], paused=paused)
        try:
            schedules, next_cursor = selectors.list_schedules(
                filters, limit=opts["limit"], cursor=opts["cursor"]
            )
        except BadParameter as exc:
            raise CommandError(f"--cursor: {exc.message}") from None
        wire = [schedule_to_wire(schedule) for schedule in schedules]
        if opts["json"]:
            for schedule in wire:
                self.stdout.write(render.json_line(schedule))
        else:
            self.stdout.write(LIST_HEADER)
            for schedule in wire:
                self.stdout.write(row(schedule))
        if next_cursor:
            self.stderr.write(f"more: --cursor {next_cursor}")
