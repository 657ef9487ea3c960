"""The webhooks API: subscriptions, their secret shown once, deliveries, redelivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.wire import parse_ts
from tests.conftest import assert_wire
from tests.webhooks.conftest import make_delivery, make_webhook
from webhooks import secrets
from webhooks.models import Delivery, RunWebhook, Webhook

PUBLIC_URL = "https://93.184.215.14/hooks/orchestrator"  # a public address literal: no DNS, never contacted
SCHEMA = "webhook.schema.json#/$defs/"


def test_create_shows_the_secret_once(api):
    response = api.post("/webhooks", {"url": PUBLIC_URL, "description": "ops"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert_wire(SCHEMA + "webhookSecretResponse", body)
    webhook = body["webhook"]
    assert webhook["events"] == ["run.completed", "run.failed", "run.canceled"]
    assert webhook["owner"] is None
    assert webhook["active"] is True
    assert secrets.is_well_formed(webhook["secret"])
    assert response["Location"] == f"/webhooks/{webhook['id']}"
    assert response["Cache-Control"] == "no-store"

    shown = api.get(f"/webhooks/{webhook['id']}").json()
    listed = api.get("/webhooks").json()
    assert "secret" not in shown["webhook"]
    assert_wire(SCHEMA + "webhookResponse", shown)
    assert_wire(SCHEMA + "webhookListResponse", listed)
    assert [w["id"] for w in listed["webhooks"]] == [webhook["id"]]
    assert "secret" not in listed["webhooks"][0]


def test_the_secret_is_stored_encrypted(api):
    secret = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["secret"]

    stored = Webhook.objects.get()
    assert secret not in stored.secret_encrypted
    assert secret.removeprefix("whsec_") not in stored.secret_encrypted
    assert secrets.decrypt(stored.secret_encrypted) == secret


def test_a_rotated_secret_is_new_and_shown_once(api):
    created = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]

    rotated = api.post(f"/webhooks/{created['id']}/rotate-secret")

    assert rotated.status_code == 200
    assert_wire(SCHEMA + "webhookSecretResponse", rotated.json())
    new_secret = rotated.json()["webhook"]["secret"]
    assert new_secret != created["secret"]
    assert secrets.decrypt(Webhook.objects.get().secret_encrypted) == new_secret


def test_a_rotation_keeps_the_old_secret_signing_for_a_day_by_default(api):
    created = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]
    assert created["previousSecretExpiresAt"] is None
    before = timezone.now()

    rotated = api.post(f"/webhooks/{created['id']}/rotate-secret").json()["webhook"]

    expires = parse_ts(rotated["previousSecretExpiresAt"])
    assert before + timedelta(days=1) <= expires <= timezone.now() + timedelta(days=1)
    assert api.get(f"/webhooks/{created['id']}").json()["webhook"]["previousSecretExpiresAt"] == (
        rotated["previousSecretExpiresAt"]
    )
    stored = Webhook.objects.get()
    assert secrets.decrypt(stored.previous_secret_encrypted) == created["secret"]


def test_a_rotation_takes_the_overlap_it_is_asked_for(api):
    webhook_id = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"]
    before = timezone.now()

    hour = api.post(f"/webhooks/{webhook_id}/rotate-secret", {"overlapSeconds": 3600}).json()["webhook"]
    expires = parse_ts(hour["previousSecretExpiresAt"])
    assert before + timedelta(hours=1) <= expires <= timezone.now() + timedelta(hours=1)

    at_once = api.post(f"/webhooks/{webhook_id}/rotate-secret", {"overlapSeconds": 0})
    assert at_once.status_code == 200, at_once.content
    assert_wire(SCHEMA + "webhookSecretResponse", at_once.json())
    assert at_once.json()["webhook"]["previousSecretExpiresAt"] is None
    stored = Webhook.objects.get()
    assert (stored.previous_secret_encrypted, stored.previous_secret_expires_at) == ("", None)


@pytest.mark.parametrize(
    "body",
    [{"overlapSeconds": -1}, {"overlapSeconds": 604801}, {"overlapSeconds": "60"}, {"overlapSeconds": 1.5}],
)
def test_a_bad_overlap_is_422_naming_it_and_rotates_nothing(api, body):
    created = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]

    response = api.post(f"/webhooks/{created['id']}/rotate-secret", body)

    assert response.status_code == 422, response.content
    assert list(response.json()["details"]["fields"]) == ["overlapSeconds"]
    assert secrets.decrypt(Webhook.objects.get().secret_encrypted) == created["secret"]


def test_an_unknown_rotation_field_is_422(api):
    webhook_id = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"]

    response = api.post(f"/webhooks/{webhook_id}/rotate-secret", {"keepOld": True})

    assert response.status_code == 422, response.content
    assert "keepOld" in response.json()["details"]["fields"]


def test_patch_changes_the_fields_it_names(api):
    created = api.post("/webhooks", {"url": PUBLIC_URL, "events": ["run.created"], "owner": "team-a"}).json()

    response = api.patch(
        f"/webhooks/{created['webhook']['id']}",
        {"events": ["run.failed", "run.completed"], "active": False, "description": "paused"},
    )

    assert response.status_code == 200, response.content
    webhook = response.json()["webhook"]
    assert (webhook["events"], webhook["active"], webhook["description"], webhook["owner"]) == (
        ["run.failed", "run.completed"],
        False,
        "paused",
        "team-a",
    )


def test_delete_removes_it(api):
    webhook_id = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"]

    assert api.delete(f"/webhooks/{webhook_id}").status_code == 204
    assert api.get(f"/webhooks/{webhook_id}").status_code == 404
    assert api.delete(f"/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://93.184.215.14/x"}, "url"),
        ({"url": "https://user:pw@93.184.215.14/x"}, "url"),
        ({"url": "http://127.0.0.1:8080/hook"}, "url"),
        ({"url": "http://localhost:8080/hook"}, "url"),
        ({"url": "http://10.1.2.3/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://[::1]/hook"}, "url"),
        ({"url": "http://[::ffff:127.0.0.1]/hook"}, "url"),
        ({"url": "http://224.0.0.1/hook"}, "url"),
        ({"url": "http://0.0.0.0/hook"}, "url"),
        ({"url": "http://240.0.0.1/hook"}, "url"),
        ({"url": "http://no-such-host.invalid/hook"}, "url"),
        ({"url": PUBLIC_URL, "events": ["run.exploded"]}, "events[0]"),
        ({"url": PUBLIC_URL, "events": []}, "events"),
        ({"url": PUBLIC_URL, "secret": "whsec_mine"}, "secret"),
    ],
)
def test_bad_subscriptions_are_422_naming_the_field(api, body, field):
    response = api.post("/webhooks", body)

    assert response.status_code == 422, response.content
    assert field in response.json()["details"]["fields"]
    assert not Webhook.objects.exists()


def test_a_patch_to_a_refused_url_is_422(api):
    webhook_id = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"]

    response = api.patch(f"/webhooks/{webhook_id}", {"url": "http://localhost/hook"})

    assert response.status_code == 422
    assert "localhost" in response.json()["details"]["fields"]["url"][0]
    assert Webhook.objects.get().url == PUBLIC_URL


def test_private_targets_are_accepted_when_allowed(api, private_networks):
    response = api.post("/webhooks", {"url": "http://localhost:8080/hook"})

    assert response.status_code == 201, response.content


def test_unknown_ids_are_404(api):
    assert api.get("/webhooks/not-a-uuid").status_code == 404
    assert api.get("/webhooks/6b1f2c4e-1d2a-4f5b-9c3d-2e1f0a9b8c7d/deliveries").status_code == 404
    webhook_id = api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"]
    response = api.post(f"/webhooks/{webhook_id}/deliveries/6b1f2c4e-1d2a-4f5b-9c3d-2e1f0a9b8c7d/redeliver")
    assert response.status_code == 404
    assert response.json()["code"] == "delivery_not_found"


def test_lists_page_without_repeats(api):
    ids = [api.post("/webhooks", {"url": PUBLIC_URL}).json()["webhook"]["id"] for _ in range(5)]

    first = api.get("/webhooks?limit=2").json()
    second = api.get(f"/webhooks?limit=2&cursor={first['nextCursor']}").json()
    third = api.get(f"/webhooks?limit=2&cursor={second['nextCursor']}").json()

    seen = [w["id"] for page in (first, second, third) for w in page["webhooks"]]
    assert seen == ids[::-1]
    assert third["nextCursor"] is None
    assert api.get("/webhooks?cursor=garbage").status_code == 400
    assert api.get("/webhooks?active=maybe").status_code == 400


def test_deliveries_are_listed_and_redelivered_with_the_same_id(api):
    webhook, _ = make_webhook(PUBLIC_URL)
    delivery = make_delivery(webhook)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=11, next_attempt_at=None, last_response_status=500
    )

    listed = api.get(f"/webhooks/{webhook.id}/deliveries").json()
    assert_wire(SCHEMA + "deliveryListResponse", listed)
    assert [(d["id"], d["status"], d["attempts"], d["lastResponseStatus"]) for d in listed["deliveries"]] == [
        (str(delivery.id), "failed", 11, 500)
    ]

    response = api.post(f"/webhooks/{webhook.id}/deliveries/{delivery.id}/redeliver")

    assert response.status_code == 202
    assert_wire(SCHEMA + "deliveryResponse", response.json())
    again = response.json()["delivery"]
    assert (again["id"], again["status"], again["attempts"]) == (str(delivery.id), "pending", 11)
    assert again["nextAttemptAt"] is not None
    assert Delivery.objects.get().series_start == 11
    assert api.get(f"/webhooks/{webhook.id}/deliveries?status=succeeded").json()["deliveries"] == []


def test_a_per_run_webhook_needs_the_server_secret(api, settings):
    settings.WEBHOOK_SECRET = ""

    response = api.post("/runs?mode=redis", {"spec": {"task": "sleep"}, "webhook": {"url": PUBLIC_URL}})

    assert response.status_code == 422
    assert "webhook" in response.json()["details"]["fields"]


def test_a_per_run_webhook_is_kept_with_its_run(api, server_secret):
    response = api.post(
        "/runs?mode=redis",
        {"spec": {"task": "sleep"}, "webhook": {"url": PUBLIC_URL, "events": ["run.running"]}},
    )

    assert response.status_code == 201, response.content
    kept = RunWebhook.objects.get()
    assert (str(kept.run_id), kept.url, kept.events) == (
        response.json()["runId"],
        PUBLIC_URL,
        ["run.running"],
    )


def test_a_delayed_run_keeps_its_per_run_webhook_while_it_waits(api, server_secret):
    response = api.post(
        "/runs?mode=redis",
        {"spec": {"task": "sleep"}, "runAt": "2999-01-01T00:00:00Z", "webhook": {"url": PUBLIC_URL}},
    )

    assert response.status_code == 201, response.content
    run = response.json()["run"]
    assert (run["status"], run["waitingFor"]["reason"]) == ("pending", "runAt")
    assert str(RunWebhook.objects.get().run_id) == run["id"]


def test_a_per_run_webhook_to_a_refused_url_creates_no_run(api, server_secret):
    from runs.models import Run

    response = api.post(
        "/runs?mode=redis", {"spec": {"task": "sleep"}, "webhook": {"url": "http://localhost/x"}}
    )

    assert response.status_code == 422
    assert "webhook.url" in response.json()["details"]["fields"]
    assert not Run.objects.exists()
