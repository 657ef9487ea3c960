"""Retention of the audit trail: delete entries older than --older-than."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from audit import services
from audit.commands import AuditedCommand
from runs.management import options, render


class Command(AuditedCommand):
    help = (
        "Delete audit entries written longer ago than --older-than (e.g. 90d), oldest first, "
        "in batches that each commit on their own, and record that it did. Run it periodically."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", metavar="AGE", required=True, help="e.g. 90d, 12w (s, m, h, d, w)"
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="entries per transaction (default 5000)"
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
        parser.add_argument("--json", action="store_true", help='print one summary {"dryRun", "entries"}')

    def handle(self, *args: Any, **opts: Any) -> None:
        older_than = options.duration("--older-than", opts["older_than"])
        if not 1 <= opts["batch_size"] <= 50_000:
            raise CommandError("--batch-size must be between 1 and 50000")
        total = sum(
            services.prune(older_than=older_than, batch_size=opts["batch_size"], dry_run=opts["dry_run"])
        )
        if not opts["dry_run"] and total:
            with transaction.atomic():
                # The trail says it was cut, and where.
                services.record(
                    "audit.prune",
                    "audit",
                    "-",
                    details={"entries": total, "olderThan": opts["older_than"]},
                )
        if opts["json"]:
            self.stdout.write(render.json_line({"dryRun": opts["dry_run"], "entries": total}))
        else:
            verb = "would delete" if opts["dry_run"] else "deleted"
            self.stdout.write(f"{verb} {total} audit entries older than {opts['older_than']}")
