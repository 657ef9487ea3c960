"""API keys kept in the database: issue, use, list, revoke, expire; the commands."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants import scopes
from tenants.models import ApiKey
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db

SCHEMA = "tenant.schema.json#/$defs/"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def issue(api, master, **body):
    payload = {"name": "dashboard", "owner": "acme", "scopes": ["runs:read"], **body}
    response = api.post("/api-keys", payload, **master)
    assert response.status_code == 201, response.content
    return response.json()


def test_the_master_issues_a_key_shown_once_and_stored_as_a_hash(api, master):
    created = issue(api, master, scopes=["runs:read", "runs:write"])

    assert_wire(SCHEMA + "createApiKeyResponse", created)
    secret, wire = created["key"], created["apiKey"]
    assert secret.startswith(wire["prefix"] + ".")
    assert wire["owner"] == "acme" and wire["scopes"] == ["runs:read", "runs:write"]
    stored = ApiKey.objects.get(pk=wire["id"])
    assert secret not in json.dumps([str(value) for value in stored.__dict__.values()])
    assert stored.hashed_key.startswith("sha512$$")
    # The key works, and no read of the key answers the secret again.
    assert api.get("/runs", **bearer(secret)).status_code == 200
    listed = api.get("/api-keys", **master).json()
    assert_wire(SCHEMA + "apiKeyListResponse", listed)
    assert [k["id"] for k in listed["apiKeys"]] == [wire["id"]]
    one = api.get(f"/api-keys/{wire['id']}", **master)
    assert_wire(SCHEMA + "apiKeyResponse", one.json())
    assert secret not in listed.__repr__() + one.content.decode()


def test_a_bad_key_request_is_a_422_naming_the_field(api, master):
    for body, field in (
        ({"name": "x", "owner": "acme", "scopes": ["runs:fly"]}, "scopes"),
        ({"name": "x", "owner": "acme", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["runs:read"]}, "owner"),
        (
            {"name": "x", "owner": "acme", "scopes": ["runs:read"], "expiresAt": "2001-01-01T00:00:00Z"},
            "expiresAt",
        ),
    ):
        response = api.post("/api-keys", body, **master)
        assert response.status_code == 422, (body, response.content)
        assert field in json.dumps(response.json()["details"]), response.content


def test_a_revoked_key_is_refused_on_the_next_request(api, master):
    created = issue(api, master)
    auth = bearer(created["key"])
    assert api.get("/runs", **auth).status_code == 200

    revoked = api.delete(f"/api-keys/{created['apiKey']['id']}", **master)

    assert revoked.status_code == 200
    assert revoked.json()["apiKey"]["revokedAt"] is not None
    refused = api.get("/runs", **auth)
    assert refused.status_code == 401 and refused.json()["code"] == "revoked_key"


def test_an_expired_key_is_refused(api, master):
    created = issue(api, master, expiresAt=(timezone.now() + timedelta(hours=1)).isoformat())
    auth = bearer(created["key"])
    assert api.get("/runs", **auth).status_code == 200

    ApiKey.objects.filter(pk=created["apiKey"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    refused = api.get("/runs", **auth)
    assert refused.status_code == 401 and refused.json()["code"] == "expired_key"


def test_a_key_with_a_wrong_secret_or_unknown_prefix_is_refused_without_echo(api, master):
    created = issue(api, master)
    prefix = created["apiKey"]["prefix"]
    for forged in (f"{prefix}." + "A" * 32, "Zz9Zz9Zz." + "B" * 32):
        response = api.get("/runs", **bearer(forged))
        assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"
        assert forged not in response.content.decode()


def test_last_used_is_written_at_most_once_a_minute(api, master):
    created = issue(api, master)
    auth = bearer(created["key"])
    key = ApiKey.objects.get(pk=created["apiKey"]["id"])
    assert key.last_used_at is None

    api.get("/runs", **auth)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    with CaptureQueriesContext(connection) as queries:
        api.get("/runs", **auth)

    assert first is not None
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    assert not [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "tenants_apikey"')]
    # Once it is older than the resolution, the next request refreshes it.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    api.get("/runs", **auth)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first - timedelta(minutes=2)


def test_a_tenant_manager_issues_and_sees_only_its_owners_keys_within_its_scopes(api, tenant_key):
    manager = tenant_key("acme", [scopes.KEYS_MANAGE, scopes.RUNS_READ])
    tenant_key("globex", [scopes.RUNS_READ])

    made = api.post("/api-keys", {"name": "ro", "owner": "acme", "scopes": ["runs:read"]}, **manager)
    elsewhere = api.post("/api-keys", {"name": "x", "owner": "globex", "scopes": ["runs:read"]}, **manager)
    wider = api.post("/api-keys", {"name": "x", "owner": "acme", "scopes": ["runs:write"]}, **manager)

    assert made.status_code == 201, made.content
    assert elsewhere.status_code == 422
    assert wider.status_code == 403 and wider.json()["details"] == {"scope": "runs:write"}
    owners = {k["owner"] for k in api.get("/api-keys", **manager).json()["apiKeys"]}
    assert owners == {"acme"}
    globex_id = str(ApiKey.objects.get(owner="globex").pk)
    assert api.get(f"/api-keys/{globex_id}", **manager).status_code == 404
    assert api.delete(f"/api-keys/{globex_id}", **manager).status_code == 404
    assert ApiKey.objects.get(pk=globex_id).revoked_at is None


def test_without_a_master_key_the_api_stays_open_and_keys_are_not_consulted(api, db):
    call_command(
        "apikeys_create", "--name", "n", "--owner", "acme", "--scope", "runs:read", stdout=io.StringIO()
    )
    assert api.post("/runs?mode=redis", {"spec": {"task": "sleep"}}).status_code == 201


def test_the_commands_create_list_and_revoke(api, master):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "apikeys_create", "--name", "ci", "--owner", "acme", "--scope", "runs:read", "--scope", "runs:write",
        stdout=out, stderr=err,
    )  # fmt: skip
    secret = out.getvalue().strip()
    assert api.get("/runs", **bearer(secret)).status_code == 200

    listed = io.StringIO()
    call_command("apikeys_list", "--json", stdout=listed)
    rows = [json.loads(line) for line in listed.getvalue().splitlines()]
    assert [(r["name"], r["owner"], r["scopes"]) for r in rows] == [
        ("ci", "acme", ["runs:read", "runs:write"])
    ]
    assert_wire(SCHEMA + "apiKey", rows[0])
    assert secret not in listed.getvalue()

    call_command("apikeys_revoke", rows[0]["prefix"], stdout=io.StringIO())
    assert api.get("/runs", **bearer(secret)).status_code == 401
    human = io.StringIO()
    call_command("apikeys_list", stdout=human)
    assert "revoked" in human.getvalue()


def test_revoking_an_unknown_key_fails_the_command(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("apikeys_revoke", "nosuchpf", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_revocation_and_expiry_hold_on_the_next_request_in_another_process(keyed_server):
    import httpx

    from tenants import services

    revoked_key, revoked_secret = services.create_key(name="a", owner="acme", scopes=["runs:read"])
    expiring_key, expiring_secret = services.create_key(name="b", owner="acme", scopes=["runs:read"])
    url = f"{keyed_server.url}/runs"
    for secret in (revoked_secret, expiring_secret):
        assert httpx.get(url, headers=bearer(secret)).status_code == 200

    services.revoke_key(revoked_key.prefix)
    ApiKey.objects.filter(pk=expiring_key.pk).update(expires_at=timezone.now())

    revoked = httpx.get(url, headers=bearer(revoked_secret))
    expired = httpx.get(url, headers=bearer(expiring_secret))
    assert (revoked.status_code, revoked.json()["code"]) == (401, "revoked_key")
    assert (expired.status_code, expired.json()["code"]) == (401, "expired_key")
    # The server process recorded the use it saw.
    assert ApiKey.objects.get(pk=revoked_key.pk).last_used_at is not None


def test_the_access_log_names_a_tenant_key_by_its_prefix_alone(api, master, caplog):
    created = issue(api, master)

    with caplog.at_level("INFO", logger="orchestrator.access"):
        api.get("/runs", **bearer(created["key"]), **{"X-Request-ID": "log-tenant-1"})
        api.get("/runs", **master, **{"X-Request-ID": "log-master-1"})

    records = [r for r in caplog.records if r.name == "orchestrator.access"]
    tenant, master_line = records[-2], records[-1]
    assert (tenant.auth, tenant.keyPrefix) == ("tenant_key", created["apiKey"]["prefix"])
    assert master_line.auth == "api_key" and not hasattr(master_line, "keyPrefix")
    assert created["key"] not in caplog.text
