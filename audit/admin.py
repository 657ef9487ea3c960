"""The audit trail in the admin: read-only, since entries record what happened."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEvent
from orchestrator.admin_readonly import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "at", "actor", "action", "target_type", "target_id", "owner", "ip", "request_id")
    list_filter = ("action", "target_type")
    search_fields = ("=actor", "=target_id", "=request_id", "=owner")
    ordering = ("-id",)
    show_full_result_count = False
    readonly_fields = (
        "id", "at", "actor", "action", "target_type", "target_id", "owner", "request_id", "ip", "details",
    )  # fmt: skip
