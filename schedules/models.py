"""Schedules and their ticks. Business rules live in `schedules.services`."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models

from schedules.timing import Timing


class Schedule(models.Model):
    class Overlap(models.TextChoices):
        SKIP = "skip"
        ALLOW = "allow"
        CANCEL_PREVIOUS = "cancel_previous"

    class Catchup(models.TextChoices):
        NONE = "none"
        LATEST = "latest"
        ALL = "all"

    class Mode(models.TextChoices):
        REDIS = "redis"
        K8S = "k8s"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    owner = models.CharField(max_length=200, blank=True, default="")
    cron = models.CharField(max_length=200, null=True, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    # The run template.
    mode = models.CharField(max_length=16, choices=Mode.choices)
    spec = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The admission fields of each run it makes, in their wire form (retry,
    # concurrency, dependsOn, priority); empty: none.
    admission = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(max_length=16, choices=Overlap.choices, default=Overlap.SKIP)
    catchup = models.CharField(max_length=16, choices=Catchup.choices, default=Catchup.LATEST)
    paused = models.BooleanField(default=False)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    # Interval ticks are anchor + k * interval: startAt, or when the timing was last set.
    anchor_at = models.DateTimeField()
    # The next tick the scheduler must handle; null when paused or past endAt.
    # A tick before now that is still here was missed (the scheduler was down).
    next_fire_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_run_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="schedule_created_idx"),
            models.Index(fields=["owner", "-created_at"], name="schedule_owner_created_idx"),
            models.Index(
                fields=["next_fire_at"],
                condition=models.Q(paused=False, next_fire_at__isnull=False),
                name="schedule_due_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cron__isnull=False, interval_seconds__isnull=True)
                | models.Q(cron__isnull=True, interval_seconds__isnull=False),
                name="schedule_cron_xor_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron or f'every {self.interval_seconds}s'})"

    def first_to_come(self, now: datetime) -> datetime | None:
        """The first tick whose run is still to come: `next_fire_at`, unless
        the runs of ticks after `now` were made ahead (`last_fired_at` is
        then one of them) and wait for their tick. None while paused."""
        if self.paused:
            return None
        if self.last_fired_at is not None and self.last_fired_at > now:
            return self.timing.next_after(now)
        return self.next_fire_at

    @property
    def timing(self) -> Timing:
        return Timing(
            cron=self.cron,
            interval_seconds=self.interval_seconds,
            timezone=self.timezone,
            anchor=self.anchor_at,
            start_at=self.start_at,
            end_at=self.end_at,
        )


class ScheduleTick(models.Model):
    """What became of one tick, or of a run of consecutive missed ticks that
    were all skipped (`tick` .. `last_tick`). The unique (schedule, tick)
    constraint is what makes a tick's run exactly one, however many
    schedulers race for it."""

    class Outcome(models.TextChoices):
        FIRED = "fired"
        CAUGHT_UP = "caught_up"
        SKIPPED = "skipped"

    class Reason(models.TextChoices):
        OVERLAP = "overlap"
        MISSED = "missed"
        CATCHUP_LIMIT = "catchup_limit"
        BACKEND_UNAVAILABLE = "backend_unavailable"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="ticks", db_index=False)
    tick = models.DateTimeField()
    last_tick = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    run_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schedule", "-tick"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick"], name="schedule_tick_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id}@{self.tick.isoformat()} {self.outcome}"
