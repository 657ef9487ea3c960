"""Two tenants side by side: nothing of one reaches the other.

Each tenant's key holds every scope, so what keeps them apart is the owner
alone: lists, reads, changes, checkpoints, streams, schedules, webhooks and
deliveries.
"""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import connect_sse

from tenants import scopes, services
from tests.conftest import SERVER_KEYS
from tests.webhooks.conftest import make_delivery

pytestmark = pytest.mark.django_db

SPEC = {"spec": {"task": "sleep", "input": {}}}
SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "mode": "redis", "spec": {"task": "sleep"}}


@pytest.fixture
def two(tenant_key, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    return tenant_key("acme"), tenant_key("globex")


def make_all(api, auth):
    """A run, a schedule and a webhook (with one delivery) of the key's owner, created over the API.

    The request claims another owner (X-Actor-ID, owner fields): the key's owner wins.
    """
    run = api.post("/runs?mode=redis&owner=intruder", SPEC, **auth, **{"X-Actor-ID": "intruder"})
    schedule = api.post("/schedules", SCHEDULE, **auth, **{"X-Actor-ID": "intruder"})
    webhook = api.post("/webhooks", {"url": "http://127.0.0.1:9/hook", "owner": "intruder"}, **auth)
    assert (run.status_code, schedule.status_code, webhook.status_code) == (201, 201, 201)
    from webhooks.models import Webhook

    delivery = make_delivery(Webhook.objects.get(pk=webhook.json()["webhook"]["id"]))
    return {
        "run": run.json()["run"],
        "schedule": schedule.json()["schedule"],
        "webhook": webhook.json()["webhook"],
        "delivery": str(delivery.id),
    }


def test_what_a_tenant_creates_gets_its_owner_whatever_the_request_says(api, two):
    acme, _ = two
    made = make_all(api, acme)

    assert made["run"]["owner"] == "acme"
    assert made["schedule"]["owner"] == "acme"
    assert made["webhook"]["owner"] == "acme"


def test_nothing_of_one_tenant_reaches_the_other(api, two, master):
    acme, globex = two
    a, b = make_all(api, acme), make_all(api, globex)
    run_b, sched_b, hook_b, delivery_b = (
        b["run"]["id"],
        b["schedule"]["id"],
        b["webhook"]["id"],
        b["delivery"],
    )

    # Lists hold only the caller's own.
    assert [r["id"] for r in api.get("/runs", **acme).json()["runs"]] == [a["run"]["id"]]
    assert [s["id"] for s in api.get("/schedules", **acme).json()["schedules"]] == [a["schedule"]["id"]]
    assert [w["id"] for w in api.get("/webhooks", **acme).json()["webhooks"]] == [a["webhook"]["id"]]
    # Asking a list for another owner is refused, not answered.
    for path in ("/runs?owner=globex", "/schedules?owner=globex", "/webhooks?owner=globex"):
        assert api.get(path, **acme).status_code == 400, path
    # Another owner's things do not exist for this key: 404, never 403.
    for method, path, body in (
        ("get", f"/runs/{run_b}", None),
        ("delete", f"/runs/{run_b}", None),
        ("patch", f"/runs/{run_b}", {"status": "running"}),
        ("get", f"/runs/{run_b}/checkpoints", None),
        ("post", f"/runs/{run_b}/checkpoints", {"type": "log", "data": 1}),
        ("post", f"/runs/{run_b}/stream-token", None),
        ("get", f"/runs/{run_b}/events", None),
        ("get", f"/schedules/{sched_b}", None),
        ("patch", f"/schedules/{sched_b}", {"paused": True}),
        ("post", f"/schedules/{sched_b}/trigger", None),
        ("delete", f"/schedules/{sched_b}", None),
        ("get", f"/webhooks/{hook_b}", None),
        ("patch", f"/webhooks/{hook_b}", {"active": False}),
        ("post", f"/webhooks/{hook_b}/rotate-secret", None),
        ("get", f"/webhooks/{hook_b}/deliveries", None),
        ("post", f"/webhooks/{hook_b}/deliveries/{delivery_b}/redeliver", None),
        ("delete", f"/webhooks/{hook_b}", None),
    ):
        response = getattr(api, method)(path, body, **acme) if body else getattr(api, method)(path, **acme)
        assert response.status_code == 404, (method, path, response.content)
    # Nor can a run of acme's wait on one of globex's.
    depends = api.post("/runs?mode=redis", {**SPEC, "dependsOn": [run_b]}, **acme)
    assert depends.status_code == 422 and run_b in str(depends.json()["details"])
    # And nothing of globex's changed.
    seen = api.get(f"/runs/{run_b}", **globex).json()["run"]
    assert (seen["status"], seen["checkpointCount"]) == ("pending", 0)
    assert api.get(f"/schedules/{sched_b}", **globex).json()["schedule"]["paused"] is False
    assert api.get(f"/webhooks/{hook_b}", **globex).json()["webhook"]["active"] is True
    assert len(api.get("/runs?owner=globex", **master).json()["runs"]) == 1
    # The master key sees both.
    assert {r["owner"] for r in api.get("/runs", **master).json()["runs"]} == {"acme", "globex"}


def test_a_tenant_changes_its_own(api, two):
    acme, _ = two
    a = make_all(api, acme)

    assert (
        api.post(f"/runs/{a['run']['id']}/checkpoints", {"type": "log", "data": 1}, **acme).status_code == 201
    )
    assert api.get(f"/runs/{a['run']['id']}/checkpoints", **acme).json()["checkpoints"][0]["data"] == 1
    assert api.delete(f"/runs/{a['run']['id']}", **acme).json()["status"] == "canceled"
    assert api.patch(f"/schedules/{a['schedule']['id']}", {"paused": True}, **acme).status_code == 200
    assert api.post(f"/webhooks/{a['webhook']['id']}/rotate-secret", **acme).status_code == 200


def _committed_key(owner: str) -> dict[str, str]:
    _, secret = services.create_key(name=f"{owner} key", owner=owner, scopes=list(scopes.ALL))
    return {"Authorization": f"Bearer {secret}"}


def _list_events_until(
    url: str, run_id: str, params: dict[str, object], headers: dict[str, str] | None = None
) -> list[dict]:
    """The run list's events until `run_id`'s creation arrives."""
    seen: list[dict] = []
    # A copy: connect_sse sets Accept in the headers it is given.
    request = {"params": params, "headers": dict(headers or {})}
    with httpx.Client(timeout=15) as client, connect_sse(client, "GET", url, **request) as source:
        assert source.response.status_code == 200, source.response.read()
        for event in source.iter_sse():
            if event.event != "run":
                continue
            seen.append(event.json())
            if event.json()["runId"] == run_id:
                return seen
    raise AssertionError("the stream ended early")


@pytest.mark.django_db(transaction=True)
def test_the_journal_stream_and_stream_tokens_carry_the_tenant(keyed_server):
    base = keyed_server.url
    acme, globex = _committed_key("acme"), _committed_key("globex")
    # globex's run first: a leak would be replayed before acme's.
    run_b = httpx.post(f"{base}/runs?mode=redis", json=SPEC, headers=globex).json()["runId"]
    run_a = httpx.post(f"{base}/runs?mode=redis", json=SPEC, headers=acme).json()["runId"]

    with_key = _list_events_until(f"{base}/runs/events", run_a, params={"replay": 1000}, headers=acme)
    minted = httpx.post(f"{base}/runs/stream-token", headers=acme)
    assert minted.status_code == 200, minted.content
    token = minted.json()["token"]
    with_token = _list_events_until(f"{base}/runs/events", run_a, params={"replay": 1000, "token": token})

    for seen in (with_key, with_token):
        assert {event["run"]["owner"] for event in seen} == {"acme"}
        assert run_b not in {event["runId"] for event in seen}
    # The per-run stream: globex's run is not there for acme, with its key or a token.
    assert httpx.get(f"{base}/runs/{run_b}/events", headers=acme, timeout=10).status_code == 404
    assert httpx.post(f"{base}/runs/{run_b}/stream-token", headers=acme).status_code == 404
    master = {"X-API-Key": SERVER_KEYS[0]}
    everything = _list_events_until(f"{base}/runs/events", run_a, params={"replay": 1000}, headers=master)
    assert run_b in {event["runId"] for event in everything}
