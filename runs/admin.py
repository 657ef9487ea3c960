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
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from runs import progress, selectors, services, states, tokens
from runs.admission_display import WaitingForFilter, waiting_text
from runs.exceptions import InvalidTransition, OrchestratorError, RunNotFound
from runs.models import Checkpoint, Run
from runs.wire import format_ts

# The admin index links the runs dashboard (runs.admin_dashboard). No
# navigation sidebar: its width is what the run list needs to fit 1280 px.
admin.site.index_template = "admin/orchestrator_index.html"
admin.site.enable_nav_sidebar = False


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


def progress_html(fraction: float | None, *, final_status: str = "") -> str:
    """A bar for `fraction` (0..1); a dash when the run states no progress."""
    if fraction is None:
        return "-" if final_status != states.COMPLETED else mark_safe("<span>done</span>")
    percent = round(fraction * 100)
    return format_html(
        "<span class='run-progress' role='progressbar' aria-valuenow='{}' aria-valuemin='0' "
        "aria-valuemax='100'><span style='width: {}%'></span></span>"
        "<span class='run-progress-text'>{}%</span>",
        percent,
        percent,
        percent,
    )


def log_operation(request: HttpRequest, run: Run, message: str) -> None:
    """The run's History (Django's LogEntry), for cancels and retries from the admin."""
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[run],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_badge",
        "mode",
        "task_or_image",
        "owner",
        "labels",
        "attempt",
        "progress_bar",
        "age",
        "duration",
        "checkpoint_count",
    )
    list_display_links = ("short_id",)
    list_filter = ("status", WaitingForFilter, "mode", "priority", ("created_at", admin.DateFieldListFilter))
    search_fields = ("owner",)
    search_help_text = "A run id or its first characters, an owner, or a label: 'nightly' or 'team=ml'."
    list_per_page = 50
    # COUNT(*) over every run on each page view is the slow part on a big table.
    show_full_result_count = False
    actions = ("cancel_selected", "retry_selected")
    fieldsets = (
        (None, {"fields": ("id", "status", "waiting", "mode", "owner", "attempt", "retry_of", "labels")}),
        ("Admission", {"fields": ("run_at", "priority", "retry_pretty")}),
        ("Times", {"fields": ("created_at", "started_at", "finished_at", "updated_at", "duration")}),
        ("Spec", {"fields": ("spec_pretty",)}),
        ("Metadata and error", {"fields": ("metadata_pretty", "error_pretty", "checkpoint_count")}),
    )
    readonly_fields = (
        *(field.name for field in Run._meta.fields),
        "labels",
        "waiting",
        "retry_pretty",
        "duration",
        "spec_pretty",
        "metadata_pretty",
        "error_pretty",
    )
    change_form_template = "admin/runs/run/change_form.html"

    class Media:
        css = {"all": ("runs/admin-run.css",)}
        js = ("runs/admin-refresh.js", "runs/admin-list.js")

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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        # The latest checkpoint's data, for the progress bar: one indexed
        # (run, seq) lookup per listed run, inside the page's one query.
        latest = Checkpoint.objects.filter(run=OuterRef("pk"), seq=OuterRef("checkpoint_count"))
        return super().get_queryset(request).annotate(latest_data=Subquery(latest.values("data")[:1]))

    @admin.display(description="id", ordering="id")
    def short_id(self, run: Run) -> str:
        return format_html("<span class='run-id' title='{}'>{}</span>", run.id, str(run.id)[:8])

    @admin.display(description="task / image")
    def task_or_image(self, run: Run) -> str:
        spec = run.spec if isinstance(run.spec, dict) else {}
        return str(spec.get("task") or spec.get("image") or "-")

    @admin.display(description="progress")
    def progress_bar(self, run: Run) -> str:
        data = getattr(run, "latest_data", None)
        if isinstance(data, str):  # SQLite hands a subquery's JSON back as text
            try:
                data = json.loads(data)
            except ValueError:
                data = None
        return progress_html(progress.fraction(data), final_status=run.status)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: Run) -> str:
        # A waiting run says what for under its status, so the list needs no column of its own at 1280 px.
        badge = format_html("<span class='run-status run-status-{}'>{}</span>", run.status, run.status)
        if not run.is_held:
            return badge
        reason = str((run.waiting_for or {}).get("reason", ""))
        return format_html(
            "{}<br><small class='run-waiting' title='{}'>{}</small>", badge, self.waiting(run), reason
        )

    @admin.display(description="labels")
    def labels(self, run: Run) -> str:
        return ", ".join(labels_of(run)) or "-"

    @admin.display(description="waiting for")
    def waiting(self, run: Run) -> str:
        return waiting_text(run.waiting_for if run.is_held else None)

    @admin.display(description="retry")
    def retry_pretty(self, run: Run) -> str:
        return _pretty(run.retry) if run.retry else "-"

    @admin.display(description="age", ordering="created_at")
    def age(self, run: Run) -> str:
        return _human(timezone.now() - run.created_at)

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
        """The code and message in words, a failed command's stderr tail as text, the rest as JSON."""
        if not run.error:
            return "-"
        error = dict(run.error) if isinstance(run.error, dict) else {"message": str(run.error)}
        code, message = error.pop("code", ""), error.pop("message", "")
        tail = error.pop("stderrTail", None)
        parts = [format_html("<p class='run-error'><strong>{}</strong> {}</p>", code, message)]
        if tail:
            parts.append(
                format_html("<p>stderr (last lines):</p><pre class='run-json run-error-tail'>{}</pre>", tail)
            )
        if error:
            parts.append(_pretty(error))
        return format_html("{}" * len(parts), *parts)

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
        matches = by_owner | queryset.filter(selectors.label_query(term))
        by_prefix = selectors.id_prefix_query(term)
        if by_prefix is not None:
            matches = matches | queryset.filter(by_prefix)
        return matches, may_have_duplicates

    # --- actions: through the service layer, like the API ---

    # Each asks to confirm first (a page listing the runs), then writes the
    # outcome to every run's History.

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        if not _confirmed(request):
            return self._confirm(request, queryset, "cancel_selected", "Cancel")
        canceled, skipped = 0, []
        for run_id in queryset.values_list("pk", flat=True):
            try:
                run = services.cancel_run(run_id)
            except (InvalidTransition, RunNotFound):
                skipped.append(str(run_id))
                continue
            canceled += 1
            log_operation(request, run, "Canceled from the admin.")
        if canceled:
            self.message_user(request, f"Canceled {canceled} run(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Not canceled (already finished): {', '.join(skipped)}", messages.WARNING
            )
        return None

    @admin.action(description="Retry selected runs (a new run from the same spec)", permissions=["operate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        if not _confirmed(request):
            return self._confirm(request, queryset, "retry_selected", "Retry")
        created, failed = [], []
        for original in queryset:
            try:
                retry = services.retry_run(original.pk)
            except OrchestratorError as exc:
                failed.append(f"{original.pk} ({exc.message})")
                continue
            created.append(str(retry.id))
            log_operation(request, original, f"Retried from the admin as run {retry.id}.")
            log_operation(request, retry, f"Created from the admin as a retry of run {original.pk}.")
        if created:
            self.message_user(request, f"Created {len(created)} retry run(s): {', '.join(created)}")
        if failed:
            self.message_user(request, f"Could not retry: {', '.join(failed)}", messages.ERROR)
        return None

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[Run], action: str, verb: str, *, form_url: str = ""
    ) -> HttpResponse:
        """The page that asks before `action` runs on these runs (POSTs back with confirmed=yes)."""
        runs = list(queryset[: CONFIRM_LISTED + 1])
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} {len(runs) if len(runs) <= CONFIRM_LISTED else 'these'} run(s)?",
            "opts": self.model._meta,
            "runs": runs[:CONFIRM_LISTED],
            "more": len(runs) > CONFIRM_LISTED,
            "action": action,
            "verb": verb,
            "form_url": form_url,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/runs/run/confirm_action.html", context)

    # --- the run page: checkpoints, live stream, buttons ---

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "list-stream-token/",
                wrap(require_POST(self.list_stream_token_view)),
                name="runs_run_list_stream_token",
            ),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name="runs_run_cancel"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name="runs_run_retry"),
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

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The list follows the run journal; its script mints a token for it here.
        extra = {
            **(extra_context or {}),
            "list_stream": {
                "events_url": reverse("run-list-events"),
                "token_url": reverse("admin:runs_run_list_stream_token"),
            },
        }
        return super().changelist_view(request, extra)

    def list_stream_token_view(self, request: HttpRequest) -> HttpResponse:
        """A token that opens the run journal stream (GET /runs/events) for the list's script.

        Minted server-side for a signed-in operator, so no API key reaches the
        browser; it opens the journal only, and expires like any stream token."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        token, expires_at = tokens.mint(tokens.LIST_STREAM, "")
        return JsonResponse({"token": token, "expiresAt": format_ts(expires_at)})

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
            latest = Checkpoint.objects.filter(run_id=run.id, seq=run.checkpoint_count).first()
            extra["progress"] = progress_html(
                progress.fraction(latest.data if latest else None), final_status=run.status
            )
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
        return self._operate(request, object_id, "cancel_selected", "Cancel")

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._operate(request, object_id, "retry_selected", "Retry")

    def _operate(self, request: HttpRequest, object_id: str, action: str, verb: str) -> HttpResponse:
        """GET (or a POST not yet confirmed) asks; a confirmed POST acts, then back to the run."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        run = self._run_for(request, object_id)
        queryset = Run.objects.filter(pk=run.pk)
        if request.method != "POST" or not _confirmed(request):
            return self._confirm(request, queryset, action, verb, form_url=request.path)
        getattr(self, action)(request, queryset)
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))


def _confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("confirmed") == "yes"


CONFIRM_LISTED = 100


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    """Read-only; a run's own page shows its checkpoints in order. The list is
    newest first (by insertion, the primary key's index), across runs."""

    list_display = ("ts", "run_short_id", "seq", "type")
    ordering = ("-pk",)
    search_fields = ("=run__id", "type", "=key")
    show_full_result_count = False
    readonly_fields = ("run", "seq", "ts", "type", "key", "data")

    @admin.display(description="run", ordering="run_id")
    def run_short_id(self, checkpoint: Checkpoint) -> str:
        url = reverse("admin:runs_run_change", args=[checkpoint.run_id])
        return format_html("<a class='run-id' href='{}' title='{}'>{}</a>", url, checkpoint.run_id,
                           str(checkpoint.run_id)[:8])  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Checkpoint | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Checkpoint | None = None) -> bool:
        return False
