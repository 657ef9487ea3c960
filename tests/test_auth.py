"""API keys and run-scoped tokens: who may call what.

Refusals are checked in-process; what a valid stream token opens is checked
over real HTTP (the event stream is an async streaming view).
"""

from __future__ import annotations

import httpx
import pytest
from django.test import Client

from runs import tokens
from tests.conftest import SERVER_KEYS, assert_wire

pytestmark = pytest.mark.django_db

KEY = "current-key-4f1e6d0b9a8c7e5d3b1a"
OLD_KEY = "previous-key-7c2a9e4b1d8f6a3c5e0b"
UNKNOWN_RUN = "6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11"

# One request of each endpoint class; {run} is an existing run.
ENDPOINTS = [
    ("get", "/runs", None),
    ("post", "/runs?mode=redis", {"spec": {"task": "sleep"}}),
    ("post", "/runs", {}),
    ("get", "/runs/{run}", None),
    ("patch", "/runs/{run}", {"status": "running"}),
    ("delete", "/runs/{run}", None),
    ("get", "/runs/{run}/checkpoints", None),
    ("post", "/runs/{run}/checkpoints", {"type": "log", "data": 1}),
    ("post", "/runs/{run}/stream-token", None),
    ("get", "/runs/{run}/events", None),
    ("get", "/openapi.json", None),
]


@pytest.fixture
def keys(settings):
    settings.ORCHESTRATOR_API_KEYS = [KEY, OLD_KEY]


@pytest.fixture
def run_id(db: None) -> str:
    from runs import services

    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    return str(run.id)


def call(client: Client, method: str, path: str, body=None, **headers: str):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    return getattr(client, method)(path, **kwargs)


def assert_unauthorized(response, code: str, *secrets: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert_wire("run.schema.json#/$defs/errorResponse", body)
    assert body["error"] == "unauthorized"
    assert body["code"] == code
    assert response["WWW-Authenticate"] == "Bearer"
    for secret in secrets:
        assert secret not in response.content.decode()
        assert all(secret not in value for value in response.headers.values())


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_a_key(keys, client, run_id, method, path, body):
    assert_unauthorized(call(client, method, path.format(run=run_id), body), "missing_credentials")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_refuses_a_wrong_key_without_echoing_it(keys, client, run_id, method, path, body):
    wrong = "wrong-key-0000000000000000"
    url = path.format(run=run_id)

    assert_unauthorized(
        call(client, method, url, body, Authorization=f"Bearer {wrong}"), "invalid_credentials", wrong
    )
    assert_unauthorized(call(client, method, url, body, **{"X-API-Key": wrong}), "invalid_credentials", wrong)
    basic = call(client, method, url, body, Authorization=f"Basic {wrong}")
    assert_unauthorized(basic, "missing_credentials")


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if not e[1].endswith("/events")])
def test_every_endpoint_accepts_either_key_in_either_header(keys, client, run_id, method, path, body):
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": OLD_KEY}):
        response = call(client, method, path.format(run=run_id), body, **headers)
        assert response.status_code not in (401, 403), response.content
        assert response.status_code < 500, response.content


def test_the_key_is_never_accepted_in_the_url(keys, client, run_id):
    assert_unauthorized(client.get(f"/runs/{run_id}/events?token={KEY}"), "invalid_credentials", KEY)
    assert_unauthorized(client.get(f"/runs?token={KEY}"), "invalid_credentials", KEY)


def test_probes_metrics_and_preflight_stay_open(keys, client):
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    preflight = client.options(
        "/runs",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200


def test_metrics_can_be_closed_behind_the_key(keys, settings, client):
    settings.METRICS_REQUIRE_AUTH = True

    assert_unauthorized(client.get("/metrics"), "missing_credentials")
    assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200


def test_the_admin_keeps_django_session_login(keys, client):
    assert client.get("/admin/login/").status_code == 200
    assert client.get("/admin/").status_code == 302


def test_without_a_key_configured_the_api_is_open(client, run_id):
    assert client.get(f"/runs/{run_id}").status_code == 200


# --- Worker tokens ---------------------------------------------------------


def worker_auth(run: str, **kwargs: int) -> dict[str, str]:
    token, _ = tokens.mint(tokens.WORKER, run, **kwargs)
    return {"Authorization": f"Bearer {token}"}


def test_a_worker_token_appends_checkpoints_and_reports_status_of_its_run(keys, client, run_id):
    auth = worker_auth(run_id)

    appended = call(client, "post", f"/runs/{run_id}/checkpoints", {"type": "log", "data": 1}, **auth)
    running = call(client, "patch", f"/runs/{run_id}", {"status": "running"}, **auth)
    seen = call(client, "get", f"/runs/{run_id}", **auth)

    assert appended.status_code == 201, appended.content
    assert running.status_code == 200 and running.json()["run"]["status"] == "running"
    assert seen.status_code == 200


def test_a_worker_token_opens_nothing_else(keys, client, run_id):
    auth = worker_auth(run_id)

    for method, path, body in ENDPOINTS:
        url = path.format(run=run_id)
        allowed = (method, path) in {
            ("post", "/runs/{run}/checkpoints"),
            ("patch", "/runs/{run}"),
            ("get", "/runs/{run}"),
        }
        if not allowed:
            assert_unauthorized(call(client, method, url, body, **auth), "token_not_valid_here")


def test_a_token_for_one_run_never_opens_another(keys, client, run_id):
    from runs import services

    other, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    auth = worker_auth(run_id)

    for method, path, body in ENDPOINTS[3:]:
        url = path.format(run=other.id)
        assert_unauthorized(call(client, method, url, body, **auth), "token_not_valid_here")
    stream_token, _ = tokens.mint(tokens.STREAM, run_id)
    assert_unauthorized(client.get(f"/runs/{other.id}/events?token={stream_token}"), "token_not_valid_here")
    unknown = client.get(f"/runs/{UNKNOWN_RUN}/events?token={stream_token}")
    assert_unauthorized(unknown, "token_not_valid_here")


def test_a_stream_token_is_no_worker_token_and_a_worker_token_no_stream_token(keys, client, run_id):
    stream_token, _ = tokens.mint(tokens.STREAM, run_id)
    worker_token, _ = tokens.mint(tokens.WORKER, run_id)

    as_bearer = call(
        client,
        "post",
        f"/runs/{run_id}/checkpoints",
        {"type": "log", "data": 1},
        Authorization=f"Bearer {stream_token}",
    )
    bearer = {"Authorization": f"Bearer {stream_token}"}
    on_events_header = client.get(f"/runs/{run_id}/events", headers=bearer)
    worker_in_url = client.get(f"/runs/{run_id}/events?token={worker_token}")
    stream_elsewhere = client.get(f"/runs/{run_id}?token={stream_token}")

    assert_unauthorized(as_bearer, "invalid_credentials", stream_token)
    assert_unauthorized(on_events_header, "invalid_credentials", stream_token)
    assert_unauthorized(worker_in_url, "invalid_credentials", worker_token)
    assert_unauthorized(stream_elsewhere, "invalid_credentials", stream_token)


def test_expired_tokens_are_refused(keys, client, run_id):
    expired_worker = worker_auth(run_id, ttl_seconds=-1)
    expired_stream, _ = tokens.mint(tokens.STREAM, run_id, ttl_seconds=-1)

    assert_unauthorized(
        call(client, "post", f"/runs/{run_id}/checkpoints", {"type": "x", "data": 1}, **expired_worker),
        "expired_token",
    )
    assert_unauthorized(client.get(f"/runs/{run_id}/events?token={expired_stream}"), "expired_token")


def test_tampered_and_foreign_tokens_are_refused(keys, settings, client, run_id):
    genuine, _ = tokens.mint(tokens.WORKER, run_id)
    payload, signature = genuine.rsplit(":", 1)
    flipped = payload + ":" + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_run = tokens.mint(tokens.WORKER, UNKNOWN_RUN)[0].rsplit(":", 1)[0]
    spliced = other_run + ":" + signature
    settings.SECRET_KEY = "another-deployment-secret"
    foreign, _ = tokens.mint(tokens.WORKER, run_id)
    settings.SECRET_KEY = "test-only-secret-key"

    for forged in (flipped, spliced, foreign, "x" * 5000, "not-a-token"):
        response = call(
            client,
            "patch",
            f"/runs/{run_id}",
            {"status": "running"},
            Authorization=f"Bearer {forged}",
        )
        assert_unauthorized(response, "invalid_credentials", forged)


# --- Stream tokens ---------------------------------------------------------


def test_a_stream_token_is_minted_for_an_existing_run_only(keys, client, run_id):
    response = client.post(f"/runs/{run_id}/stream-token", headers={"X-API-Key": KEY})
    missing = client.post(f"/runs/{UNKNOWN_RUN}/stream-token", headers={"X-API-Key": KEY})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "expiresAt"}
    assert tokens.verify(body["token"], kind=tokens.STREAM, run_id=run_id).run_id == run_id
    assert missing.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_stream_token_opens_its_run_stream_over_http(keyed_server):
    key = {"X-API-Key": SERVER_KEYS[0]}
    run = httpx.post(f"{keyed_server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}, headers=key)
    other = httpx.post(f"{keyed_server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}, headers=key)
    run_id, other_id = run.json()["runId"], other.json()["runId"]
    minted = httpx.post(f"{keyed_server.url}/runs/{run_id}/stream-token", headers=key)
    token = minted.json()["token"]

    def open_status(url: str, **headers: str) -> int:
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            return response.status_code

    assert open_status(f"{keyed_server.url}/runs/{run_id}/events?token={token}") == 200
    assert open_status(f"{keyed_server.url}/runs/{run_id}/events", **key) == 200
    assert open_status(f"{keyed_server.url}/runs/{other_id}/events?token={token}") == 401
    assert open_status(f"{keyed_server.url}/runs/{run_id}/events") == 401
    assert open_status(f"{keyed_server.url}/runs/{run_id}/checkpoints?token={token}") == 401
