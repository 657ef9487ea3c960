"""The audit trail in the admin: read-only, since entries record what happened."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("id", "at", "actor", "action", "target_type", "target_id", "owner", "ip", "request_id")
    list_filter = ("action", "target_type")
    search_fields = ("=actor", "=target_id", "=request_id", "=owner")
    ordering = ("-id",)
    show_full_result_count = False
    readonly_fields = (
        "id", "at", "actor", "action", "target_type", "target_id", "owner", "request_id", "ip", "details",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
