"""The journal in the admin: read-only, since entries record what happened."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from journal.models import Entry


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ("id", "at", "type", "run_id", "owner", "mode")
    list_filter = ("type", "mode")
    search_fields = ("=run_id", "=owner")
    ordering = ("-id",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
