"""Hand runs their backend lost back to it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from runs import services
from runs.management import options, render
from runs.wire import format_ts


class Command(AuditedCommand):
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
        parser.add_argument(
            "--json",
            action="store_true",
            help='one object per run found: {"runId", "mode", "status", "since", "action"}, where action '
            "is sent_again or would_check (pending), resent, failed, recovered or looks_lost (running)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        older_than = options.duration("--older-than", opts["older_than"])
        if opts["confirm_after"] < 0:
            raise CommandError(f"--confirm-after: {opts['confirm_after']:g} is negative")
        dry_run = opts["dry_run"]
        as_json = self.as_json = opts["json"]
        runs = services.requeue_stale_runs(older_than=older_than, dry_run=dry_run)
        for run in runs:
            if as_json:
                self.record(run, "pending", run.created_at, "would_check" if dry_run else "sent_again")
            else:
                self.stdout.write(f"{run.id}  {run.mode:5}  pending, created {run.created_at.isoformat()}")
        lost = services.lost_running_runs(quiet_for=older_than)
        if not as_json:
            for run in lost:
                quiet = run.updated_at.isoformat()
                self.stdout.write(
                    f"{run.id}  {run.mode:5}  running, no live worker or Job holds it, quiet since {quiet}"
                )
        if dry_run:
            for run in lost if as_json else ():
                self.record(run, "running", run.updated_at, "looks_lost")
            self.summary(
                f"dry run: {len(runs)} pending runs would be checked, {len(lost)} running runs look lost"
            )
            return
        self.summary(f"{len(runs)} pending runs sent to their backend again")
        if not lost:
            return
        self.summary(f"{len(lost)} running runs look lost; looking again in {opts['confirm_after']:g} s", "")
        time.sleep(opts["confirm_after"])
        outcomes = {run.pk: (run, outcome) for run, outcome in services.release_lost_runs(lost)}
        for suspect in lost:
            run, outcome = outcomes.get(suspect.pk, (suspect, "recovered"))
            if as_json:
                self.record(suspect, "running", suspect.updated_at, outcome)
            elif outcome != "recovered":
                self.stdout.write(f"{run.id}  {run.mode:5}  {outcome}")
        resent = sum(1 for _, outcome in outcomes.values() if outcome == "resent")
        self.summary(f"{resent} running runs sent again, {len(outcomes) - resent} failed")

    def record(self, run: Any, status: str, since: Any, action: str) -> None:
        self.stdout.write(
            render.json_line(
                {
                    "runId": str(run.id),
                    "mode": run.mode,
                    "status": status,
                    "since": format_ts(since),
                    "action": action,
                }
            )
        )

    def summary(self, text: str, style: str = "success") -> None:
        """A human summary: on stdout, or on stderr under --json (stdout holds only records)."""
        if self.as_json:
            self.stderr.write(text)
        else:
            self.stdout.write(self.style.SUCCESS(text) if style else text)
