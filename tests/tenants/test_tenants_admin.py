"""API keys in the admin: issued with the key shown once, listed, revoked by an action."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_admin_issues_a_key_shows_it_once_and_revokes_it(admin_client, admin_user, api, settings):
    settings.ORCHESTRATOR_API_KEYS = ["master-of-the-admin-test-0123456789"]
    page = admin_client.post(
        reverse("admin:tenants_apikey_add"),
        {"name": "dashboard", "owner": "acme", "scopes": ["runs:read"], "expires_at": ""},
    )

    assert page.status_code == 200, page.content[:500]
    assert "no-store" in page["Cache-Control"]
    secret = re.search(r'id="api-key-secret"[^>]*>([^<]+)<', page.content.decode())[1]
    key = ApiKey.objects.get()
    assert (key.name, key.owner, key.scopes) == ("dashboard", "acme", ["runs:read"])
    assert secret.startswith(key.prefix + ".") and secret not in key.hashed_key
    assert api.get("/runs", Authorization=f"Bearer {secret}").status_code == 200
    # The list and the key's page never show it again.
    listed = admin_client.get(reverse("admin:tenants_apikey_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:tenants_apikey_change", args=[key.pk])).content.decode()
    assert key.prefix in listed and secret not in listed + detail

    admin_client.post(
        reverse("admin:tenants_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [str(key.pk)]},
    )

    assert ApiKey.objects.get().revoked_at is not None
    assert api.get("/runs", Authorization=f"Bearer {secret}").json()["code"] == "revoked_key"
    actors = set(AuditEvent.objects.filter(target_id=str(key.pk)).values_list("actor", "action"))
    assert actors == {
        (f"admin:{admin_user.username}", "apikey.create"),
        (f"admin:{admin_user.username}", "apikey.revoke"),
    }


def test_the_admin_refuses_an_unknown_or_empty_scope_list_and_never_deletes_keys(admin_client):
    page = admin_client.post(
        reverse("admin:tenants_apikey_add"), {"name": "x", "owner": "acme", "scopes": [], "expires_at": ""}
    )

    assert page.status_code == 200 and not ApiKey.objects.exists()
    assert "This field is required" in page.content.decode()
    assert admin_client.get(
        reverse("admin:tenants_apikey_delete", args=["6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11"])
    ).status_code in (302, 403, 404)
