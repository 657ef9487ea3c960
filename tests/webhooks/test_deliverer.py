"""The deliverer against a real HTTP receiver on 127.0.0.1: signatures,
retries, 410, timeouts, redirects, and claims that never overlap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tests.waiting import wait_for
from tests.webhooks.conftest import make_delivery, make_webhook
from tests.webhooks.receiver import Answer
from webhooks import deliverer, secrets, services
from webhooks.deliverer import Deliverer
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast(settings, private_networks):
    settings.WEBHOOK_RETRY_SCHEDULE = "0.1,0.1"
    settings.WEBHOOK_RETRY_JITTER = 0.0
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def running() -> Iterator[Deliverer]:
    """A deliverer working in a thread of this process."""
    worker = Deliverer(concurrency=4, poll_seconds=0.05)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(20)


def _settled(delivery: Delivery) -> Delivery | None:
    delivery.refresh_from_db()
    return delivery if delivery.status != Delivery.Status.PENDING else None


def test_a_delivery_arrives_signed_and_verifiable(receiver, running):
    webhook, secret = make_webhook(receiver.url + "/hook")
    delivery = make_delivery(webhook)

    (request,) = receiver.wait_for(1)
    done = wait_for(lambda: _settled(delivery), what="the delivery settled")

    assert Verifier(secret).verify(request.body, request.headers)["type"] == "run.completed"
    assert request.headers["webhook-id"] == str(delivery.id)
    assert request.headers["content-type"] == "application/json"
    assert request.body.decode() == delivery.payload
    assert (done.status, done.attempts, done.last_response_status) == ("succeeded", 1, 204)
    assert done.delivered_at is not None and done.next_attempt_at is None


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(receiver, running):
    webhook, old_secret = make_webhook(receiver.url + "/hook")
    _, new_secret = services.rotate_secret(webhook.pk, 3600)

    make_delivery(webhook)
    (overlapping,) = receiver.wait_for(1)

    assert Verifier(new_secret).verify(overlapping.body, overlapping.headers)["type"] == "run.completed"
    assert Verifier(old_secret).verify(overlapping.body, overlapping.headers)["type"] == "run.completed"

    # The same rotation, had it been made two hours ago: its overlap is over.
    Webhook.objects.filter(pk=webhook.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(hours=1)
    )
    make_delivery(webhook, journal_id=2)
    _, after = receiver.wait_for(2)

    assert after.headers["webhook-signature"].count("v1,") == 1
    Verifier(new_secret).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(old_secret).verify(after.body, after.headers)


def test_a_rotation_without_overlap_stops_the_old_secret_at_once(receiver, running):
    webhook, old_secret = make_webhook(receiver.url + "/hook")
    _, new_secret = services.rotate_secret(webhook.pk, 0)

    make_delivery(webhook)
    (request,) = receiver.wait_for(1)

    Verifier(new_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(old_secret).verify(request.body, request.headers)


def test_a_second_rotation_drops_the_oldest_secret():
    webhook, first = make_webhook("https://93.184.215.14/hook")
    _, second = services.rotate_secret(webhook.pk, 3600)
    _, third = services.rotate_secret(webhook.pk, 3600)

    delivery = make_delivery(Webhook.objects.get(pk=webhook.pk))

    signing = deliverer.signing_secrets(delivery, timezone.now())
    assert signing == [third, second]
    assert first not in signing


def test_every_server_secret_signs_a_per_run_webhook(settings, server_secret):
    other = secrets.generate()
    settings.WEBHOOK_SECRET = f"{other},{server_secret}"

    assert deliverer.signing_secrets(Delivery(webhook=None), timezone.now()) == [other, server_secret]


def test_a_failed_attempt_is_retried_with_the_same_id(receiver, running):
    webhook, secret = make_webhook(receiver.url + "/hook")
    receiver.answer_next(Answer(status=500), Answer(status=503))
    delivery = make_delivery(webhook)

    requests = receiver.wait_for(3)
    done = wait_for(lambda: _settled(delivery), what="the delivery settled")

    assert {r.headers["webhook-id"] for r in requests} == {str(delivery.id)}
    for request in requests:
        Verifier(secret).verify(request.body, request.headers)
    assert (done.status, done.attempts, done.last_response_status) == ("succeeded", 3, 204)


def test_a_delivery_fails_when_its_retries_are_spent(receiver, running):
    webhook, _ = make_webhook(receiver.url + "/hook")
    receiver.default = Answer(status=500)
    delivery = make_delivery(webhook)

    done = wait_for(lambda: _settled(delivery), what="the delivery settled")

    assert (done.status, done.attempts, done.last_response_status, done.last_error) == (
        "failed",
        3,
        500,
        "HTTP 500",
    )
    assert len(receiver.requests) == 3


def test_410_deactivates_the_subscription(receiver, running):
    webhook, _ = make_webhook(receiver.url + "/hook")
    receiver.answer_next(Answer(status=410))
    first = make_delivery(webhook, journal_id=1)

    done = wait_for(lambda: _settled(first), what="the delivery settled")
    second = make_delivery(webhook, journal_id=2)

    webhook.refresh_from_db()
    assert (done.status, done.last_response_status) == ("failed", 410)
    assert (webhook.active, webhook.inactive_reason) == (False, services.GONE_REASON)
    # Nothing more is sent to a receiver that is gone, until it is reactivated.
    assert services.claim_deliveries(10) == []
    Webhook.objects.filter(pk=webhook.pk).update(active=True)
    wait_for(lambda: _settled(second), what="the second delivery settled")
    assert len(receiver.requests) == 2


def test_an_answer_later_than_the_timeout_is_a_failed_attempt(receiver, running, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook, _ = make_webhook(receiver.url + "/hook")
    release = threading.Event()
    receiver.answer_next(Answer(release=release))
    delivery = make_delivery(webhook)

    wait_for(lambda: Delivery.objects.filter(pk=delivery.pk, last_error__startswith="no answer").exists())
    release.set()
    done = wait_for(lambda: _settled(delivery), what="the delivery settled")

    assert (done.status, done.attempts) == ("succeeded", 2)


def test_redirects_are_not_followed(receiver, running):
    webhook, _ = make_webhook(receiver.url + "/hook")
    receiver.default = Answer(status=307, headers={"location": receiver.url + "/elsewhere"})
    delivery = make_delivery(webhook)

    done = wait_for(lambda: _settled(delivery), what="the delivery settled")

    assert (done.status, done.last_response_status) == ("failed", 307)
    assert {r.path for r in receiver.requests} == {"/hook"}


def test_claims_of_concurrent_deliverers_never_overlap():
    webhook, _ = make_webhook("http://127.0.0.1:9/never-sent")
    for journal_id in range(60):
        make_delivery(webhook, journal_id=journal_id)
    claimed: list[list[str]] = [[], [], []]
    start = threading.Barrier(3)

    def take(mine: list[str]) -> None:
        start.wait()
        while batch := services.claim_deliveries(4):
            mine.extend(str(d.id) for d in batch)
        deliverer.release_connection()

    threads = [threading.Thread(target=take, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    every = [delivery_id for mine in claimed for delivery_id in mine]
    assert len(every) == len(set(every)) == 60


def test_a_stuck_claim_is_taken_over_and_the_old_claimant_fenced(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.1
    settings.WEBHOOK_CLAIM_SECONDS = 0.5
    webhook, _ = make_webhook("http://127.0.0.1:9/never-sent")
    make_delivery(webhook)

    (stuck,) = services.claim_deliveries(1)
    assert services.claim_deliveries(1) == []  # held while the claim lasts
    (taken,) = wait_for(lambda: services.claim_deliveries(1), timeout=5, what="the claim to expire")

    assert taken.id == stuck.id and taken.attempts == 2 and taken.claim != stuck.claim
    from webhooks.transport import Outcome

    assert services.record_attempt(stuck, Outcome(204, "", "succeeded", 0.01)) is False
    assert Delivery.objects.get().status == "pending"
    assert services.record_attempt(taken, Outcome(204, "", "succeeded", 0.01)) is True
    assert Delivery.objects.get().status == "succeeded"
