"""Hand runs their backend lost back to it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runs import services
from runs.management import options


class Command(BaseCommand):
    help = (
        "Find pending runs older than --older-than and ask each run's backend to make sure it "
        "holds them (a dispatch lost to an outage or a wiped queue is sent again; a run the "
        "backend still holds is left alone). Safe to run repeatedly, e.g. from cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", default="5m", metavar="AGE", help="minimum age, e.g. 90s, 5m, 1h (default 5m)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list the stale runs without sending anything"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        older_than = options.duration("--older-than", opts["older_than"])
        runs = services.requeue_stale_runs(older_than=older_than, dry_run=opts["dry_run"])
        for run in runs:
            self.stdout.write(f"{run.id}  {run.mode:5}  created {run.created_at.isoformat()}")
        if opts["dry_run"]:
            self.stdout.write(self.style.SUCCESS(f"dry run: {len(runs)} stale runs would be checked"))
        else:
            self.stdout.write(self.style.SUCCESS(f"{len(runs)} runs sent to their backend again"))
