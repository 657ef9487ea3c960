"""Retention of the run journal: delete entries older than JOURNAL_RETENTION."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from journal import services
from runs.management import options, render
from runs.management.base import OrchestratorCommand


class Command(OrchestratorCommand):
    help = (
        "Delete run journal entries written longer ago than --older-than (default: the "
        "JOURNAL_RETENTION setting, 7d), oldest first, in batches that each commit on their own. "
        "Run it periodically (cron, a Kubernetes CronJob). Live run list clients that resume "
        "from before the oldest kept entry get `event: reset`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", metavar="AGE", help="e.g. 7d, 12h, 2w (s, m, h, d, w)")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="entries per transaction (default 1000)"
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
        parser.add_argument("--json", action="store_true", help='print one summary {"dryRun", "entries"}')

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["older_than"] is None:
            older_than = settings.JOURNAL_RETENTION
        else:
            older_than = options.duration("--older-than", opts["older_than"])
        if not 1 <= opts["batch_size"] <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        total = 0
        for count in services.prune(
            older_than=older_than, batch_size=opts["batch_size"], dry_run=opts["dry_run"]
        ):
            total += count
            self.stderr.write(f"  {'would delete' if opts['dry_run'] else 'deleted'} {total} entries")
        if opts["json"]:
            self.stdout.write(render.json_line({"dryRun": opts["dry_run"], "entries": total}))
            return
        verb = "would delete" if opts["dry_run"] else "deleted"
        self.stdout.write(
            self.style.SUCCESS(f"{'dry run: ' if opts['dry_run'] else ''}{verb} {total} journal entries")
        )
