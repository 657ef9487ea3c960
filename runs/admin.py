from django.contrib import admin

from runs.models import Checkpoint, Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "mode", "status", "owner", "created_at", "checkpoint_count")
    list_filter = ("status", "mode")
    search_fields = ("=id", "owner")
    readonly_fields = [field.name for field in Run._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "ts", "type")
    readonly_fields = ("run", "seq", "ts", "type", "data")
