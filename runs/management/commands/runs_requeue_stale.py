"""Hand runs their backend lost back to it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs import services
from runs.management import options


class Command(BaseCommand):
    help = (
        "Find runs their backend lost and hand them back. Pending runs older than --older-than: "
        "each run's backend makes sure it holds them (a dispatch lost to an outage or a wiped "
        "queue is sent again; a run the backend still holds is left alone). Running runs without "
        "news for --older-than that no worker or Job holds any more: looked at again after "
        "--confirm-after seconds, then sent again (Redis; the worker counts another attempt) or "
        "failed (Kubernetes, job_deleted). Safe to run repeatedly, e.g. from cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", default="5m", metavar="AGE", help="minimum age, e.g. 90s, 5m, 1h (default 5m)"
        )
        parser.add_argument(
            "--confirm-after",
            type=float,
            default=settings.WORKER_LEASE_SECONDS,
            metavar="SECONDS",
            help="wait before acting on a running run that looks lost, so that a live worker's "
            "heartbeat can take its lease back (default WORKER_LEASE_SECONDS)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list the stale runs without sending or failing anything"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        older_than = options.duration("--older-than", opts["older_than"])
        if opts["confirm_after"] < 0:
            raise CommandError(f"--confirm-after: {opts['confirm_after']:g} is negative")
        dry_run = opts["dry_run"]
        runs = services.requeue_stale_runs(older_than=older_than, dry_run=dry_run)
        for run in runs:
            self.stdout.write(f"{run.id}  {run.mode:5}  pending, created {run.created_at.isoformat()}")
        lost = services.lost_running_runs(quiet_for=older_than)
        for run in lost:
            self.stdout.write(
                f"{run.id}  {run.mode:5}  running, no worker or Job, quiet since {run.updated_at.isoformat()}"
            )
        if dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"dry run: {len(runs)} pending runs would be checked, {len(lost)} running runs look lost"
                )
            )
            return
        self.stdout.write(self.style.SUCCESS(f"{len(runs)} pending runs sent to their backend again"))
        if not lost:
            return
        self.stdout.write(f"{len(lost)} running runs look lost; looking again in {opts['confirm_after']:g} s")
        time.sleep(opts["confirm_after"])
        outcomes = services.release_lost_runs(lost)
        for run, outcome in outcomes:
            self.stdout.write(f"{run.id}  {run.mode:5}  {outcome}")
        resent = sum(1 for _, outcome in outcomes if outcome == "resent")
        self.stdout.write(
            self.style.SUCCESS(f"{resent} running runs sent again, {len(outcomes) - resent} failed")
        )
