"""Cancel runs through the service layer, as `DELETE /runs/{id}` does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from runs import selectors, services
from runs.exceptions import InvalidTransition, RunNotFound
from runs.management import options, render
from runs.wire import run_to_wire


class Command(AuditedCommand):
    help = (
        "Cancel one or more runs: each is marked canceled at once and its backend is told "
        "to stop the work. Exits non-zero when any run could not be canceled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_ids", nargs="+", metavar="run_id", help="ids (UUIDs) of the runs to cancel")
        parser.add_argument(
            "--json",
            action="store_true",
            help='one object per run: {"runId", "result": canceled|not_found|already_final, "run"}',
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        # Every id is checked before anything is canceled, so a typo cancels nothing.
        run_ids = [options.run_id(text) for text in opts["run_ids"]]
        failures = 0
        for run_id in run_ids:
            record: dict[str, Any] = {"runId": str(run_id)}
            try:
                run = services.cancel_run(run_id)
            except RunNotFound:
                failures += 1
                record.update(result="not_found", run=None)
                line = f"{run_id}: not found"
            except InvalidTransition as exc:
                failures += 1
                record.update(result="already_final", run=run_to_wire(selectors.get_run(run_id)))
                line = f"{run_id}: already {exc.current}, not canceled"
            else:
                record.update(result="canceled", run=run_to_wire(run))
                line = f"{run_id}: canceled"
            if opts["json"]:
                self.stdout.write(render.json_line(record))
            elif record["result"] == "canceled":
                self.stdout.write(line)
            else:
                self.stderr.write(line)
        if failures:
            raise CommandError(f"{failures} of {len(run_ids)} runs could not be canceled")
