"""Runs and their checkpoints. Business rules live in `runs.services`."""

from __future__ import annotations

import uuid

from django.db import models

from runs import states


class Run(models.Model):
    class Status(models.TextChoices):
        PENDING = states.PENDING
        RUNNING = states.RUNNING
        COMPLETED = states.COMPLETED
        FAILED = states.FAILED
        CANCELED = states.CANCELED

    class Mode(models.TextChoices):
        REDIS = "redis"
        K8S = "k8s"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    owner = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    spec = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Denormalised under the run's row lock, so appending a checkpoint never
    # scans the checkpoint table to find the next seq and ts.
    checkpoint_count = models.PositiveIntegerField(default=0)
    last_checkpoint_ts = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    idempotency_fingerprint = models.CharField(max_length=64, blank=True, default="")
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    # Admission (runs.admission): a pending run with `waiting_for` set is held
    # back from its backend until its gates open; `not_before` is the time
    # gate. Both are cleared when the run is handed over or leaves pending.
    run_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    waiting_for = models.JSONField(null=True, blank=True)
    # The schedule that made the run, and the tick it was made for. A plain
    # id rather than a foreign key: a run outlives the schedule that made it.
    schedule_id = models.UUIDField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # The retry policy (runs.retries), normalised with its defaults; null: a
    # failed attempt is final (but for lost workers, see runs.retries).
    retry = models.JSONField(null=True, blank=True)
    # The runs this one waits for (runs.dependencies), as given at creation;
    # RunDependency holds the same edges for the reverse lookup.
    depends_on = models.JSONField(null=True, blank=True)
    # At most `limit` runs of a key are handed over or running at once
    # (runs.concurrency); the limit in force is the key's (ConcurrencyKey).
    concurrency_key = models.CharField(max_length=200, null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # 0..9, higher first among handed-over runs waiting for a worker (the
    # Redis queue reads one stream per priority; runs.redis.queue), mapped to
    # a PriorityClass in k8s mode when the operator configured one.
    # db_default too: rows inserted without it (a process of the previous
    # release during a rolling deploy, bulk SQL) get the default as well.
    priority = models.PositiveSmallIntegerField(default=5, db_default=5)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_created_idx"),
            models.Index(fields=["status", "-created_at"], name="run_status_created_idx"),
            models.Index(fields=["owner", "-created_at"], name="run_owner_created_idx"),
            models.Index(fields=["mode", "status"], name="run_mode_status_idx"),
            models.Index(
                fields=["not_before"],
                condition=models.Q(status="pending", not_before__isnull=False),
                name="run_pending_not_before_idx",
            ),
            # A key's slots: only the runs holding one (at most its limit), so
            # counting them never reads the runs waiting for one.
            models.Index(
                fields=["concurrency_key"],
                condition=(models.Q(status="running") | models.Q(status="pending", waiting_for__isnull=True))
                & models.Q(concurrency_key__isnull=False),
                name="run_concurrency_slot_idx",
            ),
            # The runs waiting for a key's slot, oldest first.
            models.Index(
                fields=["concurrency_key", "created_at"],
                condition=models.Q(
                    status="pending", waiting_for__isnull=False, concurrency_key__isnull=False
                ),
                name="run_concurrency_waiting_idx",
            ),
            models.Index(
                fields=["schedule_id", "-created_at"],
                condition=models.Q(schedule_id__isnull=False),
                name="run_schedule_created_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="run_owner_idempotency_key_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.mode}, {self.status})"

    @property
    def is_final(self) -> bool:
        return states.is_final(self.status)

    @property
    def is_held(self) -> bool:
        """Pending and not yet handed to its backend (an admission gate is closed)."""
        return self.status == states.PENDING and self.waiting_for is not None


# Pending runs held back from their backend by an admission gate (runs.admission).
# Sweeps that re-send pending runs a backend lost must leave these alone.
HELD = models.Q(status=states.PENDING, waiting_for__isnull=False)


class ConcurrencyKey(models.Model):
    """One row per concurrency key: its limit, and the row every admission
    or freed slot of the key locks (runs.concurrency), so that counting the
    key's runs and handing one over are one step however many processes race."""

    key = models.CharField(max_length=200, primary_key=True)
    limit = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key} (limit {self.limit})"


class RunDependency(models.Model):
    """`run` waits for `depends_on` to complete (runs.dependencies). Indexed
    by `depends_on`: a run's finish finds the runs waiting for it without
    looking at any other pending run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dependency_links", db_index=False)
    depends_on = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dependent_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "depends_on"], name="run_dependency_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} after {self.depends_on_id}"


class Checkpoint(models.Model):
    # No index of its own: the (run, seq) and (run, ts) constraints lead with
    # the run, and every append would otherwise update a third index. On
    # PostgreSQL the reference is kept by statement triggers, not the foreign
    # key's check per row (migration 0011 says why and how).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints", db_index=False)
    seq = models.PositiveIntegerField()
    ts = models.DateTimeField()
    type = models.CharField(max_length=200)
    data = models.JSONField(null=True, blank=True)
    # The writer's own name for the checkpoint, so that a retried append is
    # stored once. Partial unique index: appends without a key never touch it.
    key = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="checkpoint_run_seq_uniq"),
            models.UniqueConstraint(fields=["run", "ts"], name="checkpoint_run_ts_uniq"),
            models.UniqueConstraint(
                fields=["run", "key"], condition=models.Q(key__isnull=False), name="checkpoint_run_key_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
