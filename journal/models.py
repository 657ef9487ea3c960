"""The run journal: one entry per run change, in the order readers may see them.

An entry copies what its readers filter on (owner, mode, schedule) and the
run as it was after the change, so it stays meaningful after the run changes
again or is pruned: `run_id` is a plain column, not a foreign key, and the
journal has a retention of its own.
"""

from __future__ import annotations

from django.db import models


class Entry(models.Model):
    # Assigned from `Clock` in the writing transaction (see journal.services),
    # never by a sequence: ids must become visible in increasing order.
    id = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    type = models.CharField(max_length=32)
    run_id = models.UUIDField()
    status = models.CharField(max_length=16)
    owner = models.CharField(max_length=200, blank=True, default="")
    mode = models.CharField(max_length=16)
    schedule_id = models.UUIDField(null=True, blank=True)
    run = models.JSONField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "entries"
        indexes = [
            models.Index(fields=["owner", "id"], name="journal_entry_owner_idx"),
            models.Index(fields=["run_id", "id"], name="journal_entry_run_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type} {self.run_id}"


class Clock(models.Model):
    """One row: the last journal id handed out. Writers take its row lock
    last in their transaction and keep it until commit, so ids commit in
    order (see docs/orchestrator_design.md, "The run journal")."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"journal clock at {self.last_id}"
