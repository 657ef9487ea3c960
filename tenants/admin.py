"""API keys in the admin: issued through the service (the key is shown once,
on the page that answers the creation), listed, and revoked by an action.
Nothing else about a key can be edited: a changed scope is a new key."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants import scopes, services
from tenants.models import ApiKey


class ApiKeyCreationForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in scopes.ALL], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "owner", "scopes", "expires_at"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            services.check_request(
                cleaned.get("name") or "",
                cleaned.get("owner") or "",
                cleaned.get("scopes") or [],
                cleaned.get("expires_at"),
            )
        except services.InvalidKeyRequest as exc:
            field = {"expiresAt": "expires_at"}.get(exc.field, exc.field)
            self.add_error(field if field in self.fields else None, exc.message)
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "owner",
        "scope_list",
        "state",
        "expires_at",
        "last_used_at",
        "created_at",
    )
    list_filter = ("owner",)
    search_fields = ("=prefix", "name", "owner")
    readonly_fields = (
        "id", "name", "owner", "scopes", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at",
    )  # fmt: skip
    actions = ["revoke_selected"]

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    @admin.display(description="state")
    def state(self, api_key: ApiKey) -> str:
        if api_key.revoked_at is not None:
            return "revoked"
        return "active" if api_key.is_usable() else "expired"

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ["name", "owner", "scopes", "expires_at"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a key is editable
        created, secret = services.create_key(
            name=form.cleaned_data["name"],
            owner=form.cleaned_data["owner"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data.get("expires_at"),
        )
        # The admin logs the addition against obj: make it the record just made.
        obj.pk = created.pk
        obj.prefix = created.prefix
        request._new_api_key = (created, secret)

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        api_key, secret = request._new_api_key
        response = TemplateResponse(
            request,
            "admin/tenants/apikey/secret.html",
            {
                **admin.site.each_context(request),
                "title": "API key created",
                "api_key": api_key,
                "secret": secret,
                "opts": ApiKey._meta,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: the record stays, for the audit trail

    @admin.action(description="Revoke selected keys (at once, in every server process)")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for key_id in queryset.values_list("pk", flat=True):
            services.revoke_key(key_id)
            count += 1
        self.message_user(request, f"{count} keys revoked.", messages.SUCCESS)
