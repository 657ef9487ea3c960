"""List runs, newest first, with the same filters as `GET /runs`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from runs import selectors, states
from runs.exceptions import BadParameter
from runs.management import options, render
from runs.management.base import OrchestratorCommand
from runs.wire import run_to_wire


class Command(OrchestratorCommand):
    help = (
        "List runs, newest first. Filters match GET /runs; prints the cursor of the "
        "next page when there is one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATUS",
            help=f"one of {', '.join(states.STATUSES)}; repeat or comma-separate for several",
        )
        parser.add_argument("--mode", choices=states.MODES)
        parser.add_argument("--owner")
        parser.add_argument("--created-after", metavar="RFC3339")
        parser.add_argument("--created-before", metavar="RFC3339")
        parser.add_argument("--limit", type=int, default=50, help="1..200, default 50")
        parser.add_argument("--cursor", help="the next-page cursor a previous listing printed")
        parser.add_argument("--json", action="store_true", help="one wire-format run per line")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 1 <= opts["limit"] <= 200:
            raise CommandError("--limit must be between 1 and 200")
        filters = selectors.RunFilters(
            statuses=options.statuses("--status", opts["status"]),
            mode=opts["mode"],
            owner=opts["owner"],
            created_after=options.timestamp("--created-after", opts["created_after"]),
            created_before=options.timestamp("--created-before", opts["created_before"]),
        )
        try:
            runs, next_cursor = selectors.list_runs(filters, limit=opts["limit"], cursor=opts["cursor"])
        except BadParameter as exc:
            raise CommandError(f"--cursor: {exc.message}") from None
        wire = [run_to_wire(run) for run in runs]
        if opts["json"]:
            for run in wire:
                self.stdout.write(render.json_line(run))
        else:
            self.stdout.write(render.LIST_HEADER)
            for run in wire:
                self.stdout.write(render.run_row(run))
        if next_cursor:
            self.stderr.write(f"more: --cursor {next_cursor}")
