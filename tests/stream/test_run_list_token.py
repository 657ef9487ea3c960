"""Browsers open the live run list with a short-lived token instead of the API key."""

from __future__ import annotations

import httpx
import pytest

from runs import tokens
from tests.conftest import SERVER_KEYS, assert_wire

pytestmark = pytest.mark.django_db(transaction=True)


def open_status(url: str, **headers: str) -> int:
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        return response.status_code


def test_a_list_stream_token_opens_the_run_list_and_nothing_else(keyed_server):
    key = {"X-API-Key": SERVER_KEYS[0]}
    base = keyed_server.url
    assert httpx.post(f"{base}/runs/stream-token").status_code == 401
    minted = httpx.post(f"{base}/runs/stream-token", headers=key)
    assert minted.status_code == 200
    assert minted.headers["Cache-Control"] == "no-store"
    assert_wire("journal.schema.json#/$defs/streamToken", minted.json())
    token = minted.json()["token"]
    run_id = httpx.post(f"{base}/runs?mode=redis", json={"spec": {"task": "sleep"}}, headers=key).json()[
        "runId"
    ]
    run_token = httpx.post(f"{base}/runs/{run_id}/stream-token", headers=key).json()["token"]

    assert open_status(f"{base}/runs/events?token={token}") == 200
    assert open_status(f"{base}/runs/events", **key) == 200
    assert open_status(f"{base}/runs/events") == 401
    # A run's stream token does not open the list, nor the list token a run or anything else.
    assert open_status(f"{base}/runs/events?token={run_token}") == 401
    assert open_status(f"{base}/runs/{run_id}/events?token={token}") == 401
    assert httpx.get(f"{base}/runs?token={token}").status_code == 401
    assert httpx.get(f"{base}/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    # The key never appears in what the service logged; nor does the token.
    assert SERVER_KEYS[0] not in keyed_server.log()


def test_an_expired_list_token_is_refused(keyed_server):
    expired, _ = tokens.mint(tokens.LIST_STREAM, "", ttl_seconds=-1)
    response = httpx.get(f"{keyed_server.url}/runs/events?token={expired}", timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "expired_token"


def test_a_list_token_carries_an_owner_restriction(keyed_server):
    restricted, _ = tokens.mint(tokens.LIST_STREAM, "", owner="team-a")
    assert tokens.read(restricted).owner == "team-a"
    base = keyed_server.url
    assert open_status(f"{base}/runs/events?token={restricted}&owner=team-a") == 200
    other = httpx.get(f"{base}/runs/events?token={restricted}&owner=team-b", timeout=10)
    assert other.status_code == 400
    assert other.json()["details"]["parameter"] == "owner"
