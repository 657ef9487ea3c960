"""The operators' admin for schedules: created, changed, paused, resumed,
triggered and deleted through `schedules.services`, as the API does, so the
scheduler is woken and the next fire time is computed by one set of rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from runs.exceptions import BackendUnavailable, SchemaViolation
from runs.wire import format_ts
from schedules import selectors, services
from schedules.models import Schedule
from schedules.wire import next_fire_times

# Wire field names in a SchemaViolation -> the form's fields.
_FORM_FIELD = {
    "cron": "cron",
    "intervalSeconds": "interval_seconds",
    "timezone": "timezone",
    "endAt": "end_at",
    "spec": "spec",
}


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ("owner", *services.EDITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        candidate = Schedule(**{name: cleaned.get(name) for name in services.EDITABLE_FIELDS})
        candidate.cron = candidate.cron or None
        candidate.metadata = candidate.metadata or {}
        try:
            services.check_schedule(candidate)
        except SchemaViolation as exc:
            for name, problems in exc.details["fields"].items():
                field = _FORM_FIELD.get(name.split(".")[0])
                for problem in problems:
                    self.add_error(field, f"{name}: {problem}" if field is None or "." in name else problem)
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ("name", "when", "mode", "owner", "paused", "next_fire", "last_run", "created_at")
    list_filter = ("paused", "mode", "overlap", "catchup")
    search_fields = ("name", "owner")
    actions = ("pause_selected", "resume_selected", "trigger_selected")
    readonly_fields = ("next_fire_times_list", "last_fired_at", "last_run", "recent_runs", "recent_skips")
    fieldsets = (
        (None, {"fields": ("name", "owner", "paused")}),
        (
            "When",
            {
                "fields": (
                    "cron",
                    "interval_seconds",
                    "timezone",
                    "start_at",
                    "end_at",
                    "next_fire_times_list",
                )
            },
        ),
        ("Run template", {"fields": ("mode", "spec", "metadata", "admission")}),
        ("Policies", {"fields": ("overlap", "catchup")}),
        ("History", {"fields": ("last_fired_at", "last_run", "recent_runs", "recent_skips")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> tuple[str, ...]:
        # The owner is who the schedule's runs belong to; it is chosen once.
        return (*self.readonly_fields, "owner") if obj is not None else self.readonly_fields

    # --- columns ---

    @admin.display(description="when")
    def when(self, schedule: Schedule) -> str:
        if schedule.cron:
            return f"{schedule.cron} ({schedule.timezone})"
        return f"every {schedule.interval_seconds}s"

    @admin.display(description="next fire (UTC)", ordering="next_fire_at")
    def next_fire(self, schedule: Schedule) -> str:
        return format_ts(schedule.first_to_come(timezone.now())) or "-"

    @admin.display(description="last run")
    def last_run(self, schedule: Schedule) -> str:
        if schedule.last_run_id is None:
            return "-"
        url = reverse("admin:runs_run_change", args=[schedule.last_run_id])
        return format_html("<a href='{}'>{}</a>", url, schedule.last_run_id)

    @admin.display(description="next fire times (UTC)")
    def next_fire_times_list(self, schedule: Schedule) -> str:
        times = next_fire_times(schedule) if schedule.pk else []
        return format_html_join(", ", "{}", ((t,) for t in times)) or "-"

    @admin.display(description="recent runs")
    def recent_runs(self, schedule: Schedule) -> str:
        runs = selectors.recent_runs(schedule) if schedule.pk else []
        if not runs:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:runs_run_change", args=[run.id]),
                    run.id,
                    format_ts(run.scheduled_for),
                    run.status,
                )
                for run in runs
            ),
        )
        return format_html("<table><tr><th>run</th><th>tick</th><th>status</th></tr>{}</table>", rows)

    @admin.display(description="recent skips")
    def recent_skips(self, schedule: Schedule) -> str:
        skips = selectors.recent_skips(schedule) if schedule.pk else []
        if not skips:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    format_ts(skip.tick),
                    "" if skip.last_tick == skip.tick else format_ts(skip.last_tick),
                    skip.reason,
                )
                for skip in skips
            ),
        )
        return format_html("<table><tr><th>tick</th><th>through</th><th>reason</th></tr>{}</table>", rows)

    # --- writes: through the service layer ---

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data.get(name) for name in services.EDITABLE_FIELDS}
        fields["cron"] = fields["cron"] or None
        if change:
            saved = services.update_schedule(obj.pk, fields)
        else:
            saved = services.create_schedule(owner=form.cleaned_data.get("owner") or "", **fields)
        for field in Schedule._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        services.delete_schedule(obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule_id in queryset.values_list("pk", flat=True):
            services.delete_schedule(schedule_id)

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule_id in queryset.values_list("pk", flat=True):
            services.set_paused(schedule_id, True)
        self.message_user(request, f"Paused {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule_id in queryset.values_list("pk", flat=True):
            services.set_paused(schedule_id, False)
        self.message_user(request, f"Resumed {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Trigger selected schedules now", permissions=["change"])
    def trigger_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        made, failed = [], []
        for schedule_id in queryset.values_list("pk", flat=True):
            try:
                made.append(str(services.trigger_schedule(schedule_id).id))
            except BackendUnavailable:
                failed.append(str(schedule_id))
        if made:
            self.message_user(request, f"Made {len(made)} run(s): {', '.join(made)}", messages.SUCCESS)
        if failed:
            self.message_user(
                request, f"Backend unavailable, no run for: {', '.join(failed)}", messages.ERROR
            )
