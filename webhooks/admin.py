"""The operators' admin: subscriptions (the secret is shown once, on the page
that answers its creation or rotation, and never stored anywhere readable),
per-run webhooks, and deliveries with a "redeliver" action."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit import services as audit
from webhooks import secrets, services, urlguard
from webhooks.models import DEFAULT_EVENTS, EVENT_TYPES, Delivery, RunWebhook, Webhook


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES],
        initial=list(DEFAULT_EVENTS),
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Webhook
        fields = ["url", "events", "owner", "description", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            urlguard.check(url)
        except urlguard.UnsafeDestination as refused:
            raise forms.ValidationError(refused.reason) from None
        return url


def _secret_page(request: HttpRequest, webhook: Webhook, secret: str, action: str) -> TemplateResponse:
    response = TemplateResponse(
        request,
        "admin/webhooks/webhook/secret.html",
        {
            **admin.site.each_context(request),
            "title": f"Signing secret ({action})",
            "webhook": webhook,
            "secret": secret,
            "opts": Webhook._meta,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ("url", "event_list", "owner", "active", "inactive_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "owner", "description")
    readonly_fields = ("id", "inactive_reason", "previous_secret_expires_at", "created_at", "updated_at")
    actions = ["rotate_secret"]

    @admin.display(description="events")
    def event_list(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events)

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        if not change:
            request._new_webhook_secret = secrets.generate()
            obj.secret_encrypted = secrets.encrypt(request._new_webhook_secret)
        elif obj.active:
            obj.inactive_reason = ""
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            action = "webhook.update" if change else "webhook.create"
            audit.record(action, "webhook", obj.pk, owner=obj.owner or "", details={"url": obj.url})

    def response_add(
        self, request: HttpRequest, obj: Webhook, post_url_continue: str | None = None
    ) -> HttpResponse:
        return _secret_page(request, obj, request._new_webhook_secret, "created")

    def delete_model(self, request: HttpRequest, obj: Webhook) -> None:
        services.delete_webhook(obj.pk)  # the service records the deletion in the audit trail

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook_id in queryset.values_list("pk", flat=True):
            services.delete_webhook(webhook_id)

    @admin.action(description="Rotate the signing secret (the new one is shown once; the old one overlaps)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Rotate one webhook at a time: each new secret is shown once.", messages.ERROR
            )
            return None
        webhook, secret = services.rotate_secret(queryset.get().pk)
        return _secret_page(request, webhook, secret, "rotated")


@admin.register(RunWebhook)
class RunWebhookAdmin(admin.ModelAdmin):
    list_display = ("run", "url", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("run__id", "url")
    readonly_fields = ("run", "url", "events", "active", "inactive_reason", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id", "event_type", "run_id", "webhook", "status", "attempts", "last_response_status",
        "next_attempt_at", "created_at",
    )  # fmt: skip
    list_filter = ("status", "event_type")
    search_fields = ("=id", "=run_id", "webhook__url")
    list_select_related = ("webhook",)
    readonly_fields = (
        "id", "webhook", "run_webhook", "journal_id", "event_type", "run_id", "body", "status",
        "attempts", "next_attempt_at", "last_attempt_at", "last_response_status", "last_error",
        "delivered_at", "created_at",
    )  # fmt: skip
    exclude = ("payload", "series_start")
    actions = ["redeliver"]

    @admin.display(description="body")
    def body(self, delivery: Delivery) -> str:
        return json.dumps(json.loads(delivery.payload), indent=2)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_delivery")

    @admin.action(description="Redeliver (same webhook-id)", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset:
            services.redeliver(delivery)
            count += 1
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)
