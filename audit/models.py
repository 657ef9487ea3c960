"""The audit trail: who changed what, one row per change, never edited.

Rows are written by `audit.services.record` inside the transaction of the
change they describe, so a change and its entry commit or vanish together.
Nothing updates or deletes a row but `audit_prune`, which removes old ones.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """An audit entry is written once and never changed."""


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now)
    # "master", "key:<prefix>", "admin:<username>", "command:<name>", "worker:<runId>".
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64)
    # The tenant the target belongs to ("" for none): what a tenant's key may read.
    owner = models.CharField(max_length=200, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    ip = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["at"], name="audit_event_at_idx"),
            models.Index(fields=["target_id", "id"], name="audit_event_target_idx"),
            models.Index(fields=["actor", "id"], name="audit_event_actor_idx"),
            models.Index(fields=["owner", "id"], name="audit_event_owner_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.actor} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("audit entries are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnly("audit entries are removed only by audit_prune")
