"""Browsers on other origins: which may call, with which headers, and what they may read."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

APP = "https://app.example"
STRANGER = "https://evil.example"
KEY = "cors-key-5a6b7c8d9e0f11223344"


def preflight(client, origin: str, method: str = "POST", headers: str = "authorization"):
    return client.options(
        "/runs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_without_cors_origins_any_origin_may_call_without_credentials(client):
    response = preflight(client, STRANGER, headers="authorization,x-api-key,idempotency-key,last-event-id")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-api-key", "idempotency-key", "last-event-id"} <= allowed


@pytest.fixture
def only_app(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.ORCHESTRATOR_API_KEYS = [KEY]


def test_a_listed_origin_passes_preflight_even_with_a_key_required(only_app, client):
    response = preflight(client, APP, method="PATCH", headers="authorization,content-type")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "PATCH" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_an_unlisted_origin_is_refused(only_app, client):
    refused_preflight = preflight(client, STRANGER)
    refused_call = client.get("/runs", headers={"Origin": STRANGER, "X-API-Key": KEY})

    assert "Access-Control-Allow-Origin" not in refused_preflight
    assert "Access-Control-Allow-Origin" not in refused_call


def test_a_listed_origin_can_read_location_request_id_and_retry_after(only_app, client):
    created = client.post(
        "/runs?mode=redis",
        {"spec": {"task": "sleep"}},
        content_type="application/json",
        headers={"Origin": APP, "X-API-Key": KEY},
    )

    assert created.status_code == 201
    assert created["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip().lower() for h in created["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"location", "x-request-id", "retry-after"}


def test_a_refusal_carries_cors_headers_so_the_page_can_read_it(only_app, client):
    response = client.get("/runs", headers={"Origin": APP})

    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == APP
