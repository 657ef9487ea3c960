"""API keys kept in the database: each belongs to one owner (a tenant) and
holds a set of scopes. Only a hash of the secret is stored; the prefix, which
is part of the key, finds the row and names the key in lists and logs."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    owner = models.CharField(max_length=200)
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=200, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["owner", "created_at"], name="tenants_apikey_owner_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.owner})"

    def is_usable(self, now: object = None) -> bool:
        moment = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > moment)
