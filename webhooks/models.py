"""Webhook subscriptions, per-run webhooks and their deliveries.

Business rules live in `webhooks.services` (subscriptions) and
`webhooks.deliverer` (sending); deliveries are made from the run journal by
`webhooks.fanout`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.utils import timezone

from journal.services import FINAL_TYPES, TYPES
from runs.models import Run

# The journal's entry types; a subscription without `events` gets the final three.
EVENT_TYPES = TYPES
DEFAULT_EVENTS = FINAL_TYPES


class Webhook(models.Model):
    """A subscription: events of the runs it asks for go to `url`, signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)
    # None: every owner's runs; otherwise only runs of this owner.
    owner = models.CharField(max_length=200, null=True, blank=True)
    description = models.CharField(max_length=500, blank=True, default="")
    active = models.BooleanField(default=True)
    # Why it was deactivated by the service (a 410 from the receiver); empty otherwise.
    inactive_reason = models.CharField(max_length=200, blank=True, default="")
    # The signing secret, encrypted (see `webhooks.secrets`); never shown after creation.
    secret_encrypted = models.TextField(editable=False)
    # The secret a rotation replaced, encrypted too: it signs beside the new one
    # until `previous_secret_expires_at`, so receivers can switch without a gap.
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="webhook_created_idx")]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"

    def previous_secret_signs_until(self, now: datetime) -> datetime | None:
        """Until when a rotation's old secret still signs; None once it no longer does."""
        expires = self.previous_secret_expires_at
        if self.previous_secret_encrypted and expires is not None and now < expires:
            return expires
        return None


class RunWebhook(models.Model):
    """The `webhook` of `POST /runs`: that run's events only, signed with WEBHOOK_SECRET."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, primary_key=True, related_name="webhook")
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    inactive_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.url} (run {self.run_id})"


class Delivery(models.Model):
    """One event for one receiver, sent until it succeeds or its retries are spent.

    Its id is the `webhook-id` header, the same on every attempt and on a
    redelivery, so receivers dedupe on it. While an attempt is in flight,
    `claim` names it and `next_attempt_at` is when that claim expires (a
    deliverer that died is taken over from then).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(
        Webhook, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    run_webhook = models.ForeignKey(
        RunWebhook, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    journal_id = models.BigIntegerField(help_text="the journal entry this delivery was made from")
    event_type = models.CharField(max_length=32)
    run_id = models.UUIDField()
    # When the run changed (the journal entry's time), for the delivery lag.
    event_at = models.DateTimeField(default=timezone.now)
    # The exact body sent on every attempt (only the signature's timestamp changes).
    payload = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when the current series began (0, or a redelivery): the
    # retry schedule counts from here.
    series_start = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due_idx"
            ),
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_webhook_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "journal_id"],
                condition=models.Q(webhook__isnull=False),
                name="delivery_webhook_entry_uniq",
            ),
            models.UniqueConstraint(
                fields=["run_webhook", "journal_id"],
                condition=models.Q(run_webhook__isnull=False),
                name="delivery_run_webhook_entry_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(webhook__isnull=False, run_webhook__isnull=True)
                | models.Q(webhook__isnull=True, run_webhook__isnull=False),
                name="delivery_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.run_id} ({self.status})"

    @property
    def target(self) -> Webhook | RunWebhook:
        return self.webhook if self.webhook_id else self.run_webhook


class FanoutCursor(models.Model):
    """How far the fan-out has read the run journal (one row)."""

    name = models.CharField(max_length=32, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
