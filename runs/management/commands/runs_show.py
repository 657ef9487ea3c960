"""Show one run: its fields, spec and latest checkpoints."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from runs import selectors
from runs.management import options, render
from runs.management.base import OrchestratorCommand
from runs.wire import checkpoint_to_wire, run_to_wire


class Command(OrchestratorCommand):
    help = "Show a run: status, times, spec, metadata and its latest checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", help="the run's id (UUID)")
        parser.add_argument(
            "--checkpoints",
            type=int,
            default=10,
            metavar="N",
            help="how many of the latest to show (0..1000)",
        )
        parser.add_argument("--json", action="store_true", help='print {"run", "checkpoints"} as JSON')

    def handle(self, *args: Any, **opts: Any) -> None:
        run_id = options.run_id(opts["run_id"])
        if not 0 <= opts["checkpoints"] <= 1000:
            raise CommandError("--checkpoints must be between 0 and 1000")
        run = selectors.get_run(run_id)
        if run is None:
            raise CommandError(f"run {run_id} not found")
        wire = run_to_wire(run)
        checkpoints = [checkpoint_to_wire(c) for c in selectors.last_checkpoints(run, opts["checkpoints"])]
        if opts["json"]:
            self.stdout.write(json.dumps({"run": wire, "checkpoints": checkpoints}, indent=2))
            return
        for line in render.run_details(wire):
            self.stdout.write(line)
        if checkpoints:
            shown = f"last {len(checkpoints)} of {run.checkpoint_count}"
            self.stdout.write(f"checkpoints ({shown}, oldest first):")
            for checkpoint in checkpoints:
                self.stdout.write("  " + render.checkpoint_line(checkpoint))
