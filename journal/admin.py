"""The journal in the admin: read-only, since entries record what happened."""

from __future__ import annotations

from django.contrib import admin

from journal.models import Entry
from orchestrator.admin_readonly import ReadOnlyModelAdmin


@admin.register(Entry)
class EntryAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "at", "type", "run_id", "owner", "mode")
    list_filter = ("type", "mode")
    search_fields = ("=run_id", "=owner")
    ordering = ("-id",)
    show_full_result_count = False
