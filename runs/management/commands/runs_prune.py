"""Retention: delete finished runs, and their checkpoints, past an age."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from runs import services, states
from runs.management import options, render
from runs.management.base import OrchestratorCommand

FINAL = tuple(sorted(states.FINAL_STATUSES))


class Command(OrchestratorCommand):
    help = (
        "Delete finished runs (completed, failed, canceled) that finished longer ago than "
        "--older-than, with their checkpoints, in batches that each commit on their own, "
        "so no lock is held for long. Pending and running runs are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w (s, m, h, d, w)"
        )
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATUS",
            help=f"only these final statuses ({', '.join(FINAL)}); repeat or comma-separate",
        )
        parser.add_argument("--batch-size", type=int, default=500, help="runs per transaction (default 500)")
        parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
        parser.add_argument(
            "--json",
            action="store_true",
            help='print one summary object {"dryRun", "olderThan", "matched", "runs", "checkpoints"}',
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        older_than = options.duration("--older-than", opts["older_than"])
        statuses = options.statuses("--status", opts["status"], allowed=FINAL)
        if not 1 <= opts["batch_size"] <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        total = services.count_prunable(older_than=older_than, statuses=statuses)
        verb = "would delete" if opts["dry_run"] else "deleted"
        if not opts["json"]:
            self.stdout.write(f"{total} finished runs older than {opts['older_than']} to prune")
        runs = checkpoints = 0
        started = time.monotonic()
        # Progress goes to stderr, so stdout holds only the result a script reads.
        for batch in services.prune_finished_runs(
            older_than=older_than, statuses=statuses, batch_size=opts["batch_size"], dry_run=opts["dry_run"]
        ):
            runs += batch.runs
            checkpoints += batch.checkpoints
            self.stderr.write(progress_line(verb, runs, total, checkpoints, time.monotonic() - started))
        if opts["json"]:
            summary = {
                "dryRun": opts["dry_run"],
                "olderThan": opts["older_than"],
                "matched": total,
                "runs": runs,
                "checkpoints": checkpoints,
            }
            self.stdout.write(render.json_line(summary))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{'dry run: ' if opts['dry_run'] else ''}{verb} {runs} runs and {checkpoints} checkpoints"
            )
        )


def progress_line(verb: str, done: int, total: int, checkpoints: int, elapsed: float) -> str:
    """`deleted 500/12000 runs (4%), 9000 checkpoints, 1.2 s, about 27 s left`."""
    share = f" ({done * 100 // total}%)" if total else ""
    line = f"  {verb} {done}/{total} runs{share}, {checkpoints} checkpoints, {elapsed:.1f} s"
    if 0 < done < total:
        line += f", about {elapsed * (total - done) / done:.0f} s left"
    return line
