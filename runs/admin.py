"""The operators' admin: runs listed, searched and watched live; cancel and
retry through the service layer. Nothing here edits a run's fields, so the
state machine in `runs.services` stays the only way a run changes."""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from runs import services, tokens
from runs.exceptions import InvalidTransition, OrchestratorError, RunNotFound
from runs.models import Checkpoint, Run
from runs.wire import format_ts


def labels_of(run: Run) -> list[str]:
    """`metadata["labels"]`: a dict shows as key=value, a list as its items."""
    labels = (run.metadata or {}).get("labels") if isinstance(run.metadata, dict) else None
    if isinstance(labels, dict):
        return [f"{key}={value}" for key, value in labels.items()]
    if isinstance(labels, list):
        return [str(label) for label in labels]
    return []


def _pretty(value: Any) -> str:
    return format_html("<pre class='run-json'>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


CHECKPOINT_DATA_SHOWN = 2000


def _shortened(data: Any) -> str:
    """A checkpoint's data for the table; a page of 50 large ones would weigh megabytes."""
    text = json.dumps(data, indent=1)
    if len(text) <= CHECKPOINT_DATA_SHOWN:
        return text
    return f"{text[:CHECKPOINT_DATA_SHOWN]}\n… ({len(text)} characters in all: see the API for the rest)"


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{delta.total_seconds():.1f}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


class LabelSearch:
    """Search terms for `metadata["labels"]`: `team` finds a list label or a dict
    key, `team=ml` a dict entry. PostgreSQL answers with JSON containment."""

    @staticmethod
    def query(term: str) -> Q:
        key, sep, value = term.partition("=")
        if connection.features.supports_json_field_contains:
            if sep:
                return Q(metadata__labels__contains={key: value})
            return Q(metadata__labels__contains=[term]) | Q(metadata__labels__has_key=term)
        # SQLite (a first local run) has no containment: match the labels' JSON text.
        return Q(metadata__labels__icontains=term.replace("=", '": "') if sep else term)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status_badge",
        "mode",
        "owner",
        "labels",
        "age",
        "duration",
        "checkpoint_count",
        "created_at",
    )
    list_filter = ("status", "mode", ("created_at", admin.DateFieldListFilter))
    search_fields = ("owner",)
    search_help_text = "A run id, an owner, or a label: 'nightly' or 'team=ml'."
    list_per_page = 50
    # COUNT(*) over every run on each page view is the slow part on a big table.
    show_full_result_count = False
    actions = ("cancel_selected", "retry_selected")
    fieldsets = (
        (None, {"fields": ("id", "status", "mode", "owner", "attempt", "retry_of", "labels")}),
        ("Times", {"fields": ("created_at", "started_at", "finished_at", "updated_at", "duration")}),
        ("Spec", {"fields": ("spec_pretty",)}),
        ("Metadata and error", {"fields": ("metadata_pretty", "error_pretty", "checkpoint_count")}),
    )
    readonly_fields = (
        *(field.name for field in Run._meta.fields),
        "labels",
        "duration",
        "spec_pretty",
        "metadata_pretty",
        "error_pretty",
    )
    change_form_template = "admin/runs/run/change_form.html"

    class Media:
        css = {"all": ("runs/admin-run.css",)}

    # Nobody adds, edits or deletes runs here: runs come from the API, change
    # only through the service layer (the actions below), and go by retention
    # (`manage.py runs_prune`).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Cancel and retry: for users holding the model's change permission."""
        return request.user.has_perm("runs.change_run")

    # --- list columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: Run) -> str:
        return format_html("<span class='run-status run-status-{}'>{}</span>", run.status, run.status)

    @admin.display(description="labels")
    def labels(self, run: Run) -> str:
        return ", ".join(labels_of(run)) or "-"

    @admin.display(description="age", ordering="created_at")
    def age(self, run: Run) -> str:
        return timesince(run.created_at)

    @admin.display(description="duration")
    def duration(self, run: Run) -> str:
        if run.started_at is None:
            return "-"
        return _human((run.finished_at or timezone.now()) - run.started_at)

    @admin.display(description="spec")
    def spec_pretty(self, run: Run) -> str:
        return _pretty(run.spec)

    @admin.display(description="metadata")
    def metadata_pretty(self, run: Run) -> str:
        return _pretty(run.metadata)

    @admin.display(description="error")
    def error_pretty(self, run: Run) -> str:
        return _pretty(run.error) if run.error else "-"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Run], search_term: str
    ) -> tuple[QuerySet[Run], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        by_owner, may_have_duplicates = super().get_search_results(request, queryset, term)
        return by_owner | queryset.filter(LabelSearch.query(term)), may_have_duplicates

    # --- actions: through the service layer, like the API ---

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        canceled, skipped = 0, []
        for run_id in queryset.values_list("pk", flat=True):
            try:
                services.cancel_run(run_id)
                canceled += 1
            except (InvalidTransition, RunNotFound):
                skipped.append(str(run_id))
        if canceled:
            self.message_user(request, f"Canceled {canceled} run(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Not canceled (already finished): {', '.join(skipped)}", messages.WARNING
            )

    @admin.action(description="Retry selected runs (a new run from the same spec)", permissions=["operate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        created, failed = [], []
        for run_id in queryset.values_list("pk", flat=True):
            try:
                created.append(str(services.retry_run(run_id).id))
            except OrchestratorError as exc:
                failed.append(f"{run_id} ({exc.message})")
        if created:
            self.message_user(request, f"Created {len(created)} retry run(s): {', '.join(created)}")
        if failed:
            self.message_user(request, f"Could not retry: {', '.join(failed)}", messages.ERROR)

    # --- the run page: checkpoints, live stream, buttons ---

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/cancel/", wrap(require_POST(self.cancel_view)), name="runs_run_cancel"),
            path("<path:object_id>/retry/", wrap(require_POST(self.retry_view)), name="runs_run_retry"),
            path(
                "<path:object_id>/stream-token/",
                wrap(require_POST(self.stream_token_view)),
                name="runs_run_stream_token",
            ),
            *super().get_urls(),
        ]

    def _run_for(self, request: HttpRequest, object_id: str) -> Run:
        run = self.get_object(request, unquote(object_id))
        if run is None or not self.has_view_permission(request, run):
            raise Http404("run not found")
        return run

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        run = self.get_object(request, unquote(object_id))
        if run is not None:
            extra.update(self._checkpoint_page(request, run))
            on_last_page = extra["checkpoint_page"] == extra["checkpoint_pages"]
            newest_shown = extra["checkpoints"][-1]["ts"] if extra["checkpoints"] else ""
            extra.update(self._live(run, on_last_page=on_last_page, newest_shown=newest_shown))
            extra["can_operate"] = self.has_operate_permission(request)
        return super().change_view(request, object_id, form_url, extra)

    def _checkpoint_page(self, request: HttpRequest, run: Run) -> dict[str, Any]:
        """One page of checkpoints, oldest first, the last page by default.

        Pages are seq ranges (seq counts 1, 2, 3... with no gaps), so showing
        page 2000 of a huge run reads 50 rows by index, never an OFFSET scan.
        """
        per_page = settings.ADMIN_CHECKPOINTS_PER_PAGE
        pages = max(1, math.ceil(run.checkpoint_count / per_page))
        try:
            page = min(max(int(request.GET.get("cp", pages)), 1), pages)
        except ValueError:
            page = pages
        first_seq = (page - 1) * per_page
        checkpoints = list(
            Checkpoint.objects.filter(
                run_id=run.id, seq__gt=first_seq, seq__lte=first_seq + per_page
            ).order_by("seq")
        )
        return {
            "checkpoints": [
                {"seq": c.seq, "ts": format_ts(c.ts), "type": c.type, "data": _shortened(c.data)}
                for c in checkpoints
            ],
            "checkpoint_page": page,
            "checkpoint_pages": pages,
            "checkpoint_pages_nav": {
                "first": 1 if page > 1 else None,
                "previous": page - 1 if page > 1 else None,
                "next": page + 1 if page < pages else None,
                "last": pages if page < pages else None,
            },
        }

    def _live(self, run: Run, *, on_last_page: bool, newest_shown: str) -> dict[str, Any]:
        """What the page's script needs to follow the run's event stream.

        The stream token is minted here, server-side, for this one run: the
        API key never reaches the browser, and EventSource cannot send headers.
        The script resumes after the newest checkpoint the page already shows,
        so one that lands between rendering and connecting is not lost.
        """
        token, expires_at = tokens.mint(tokens.STREAM, str(run.id))
        resume_after = newest_shown if on_last_page else format_ts(run.last_checkpoint_ts)
        return {
            "live": {
                "events_url": reverse("run-events", args=[run.id]),
                "token": token,
                "token_expires_at": format_ts(expires_at),
                "token_url": reverse("admin:runs_run_stream_token", args=[run.id]),
                "last_event_id": resume_after or "",
                "append": on_last_page,
                "final": run.is_final,
            }
        }

    def stream_token_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A fresh stream token for the page's script when it reconnects."""
        run = self._run_for(request, object_id)
        token, expires_at = tokens.mint(tokens.STREAM, str(run.id))
        # The status tells the script whether a refused reconnect means the run has ended.
        return JsonResponse({"token": token, "expiresAt": format_ts(expires_at), "status": run.status})

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._operate(request, object_id, self.cancel_selected)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._operate(request, object_id, self.retry_selected)

    def _operate(self, request: HttpRequest, object_id: str, action: Any) -> HttpResponse:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        run = self._run_for(request, object_id)
        action(request, Run.objects.filter(pk=run.pk))
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    """Read-only; a run's own page shows its checkpoints in order."""

    list_display = ("run", "seq", "ts", "type")
    list_select_related = ("run",)
    search_fields = ("=run__id", "type", "=key")
    show_full_result_count = False
    readonly_fields = ("run", "seq", "ts", "type", "key", "data")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Checkpoint | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Checkpoint | None = None) -> bool:
        return False
