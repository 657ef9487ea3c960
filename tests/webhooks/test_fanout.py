"""Deliveries are made from the run journal: exactly the events each target
asked for, once, whatever crashes or concurrent deliverers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from standardwebhooks import Webhook as Verifier

from journal.models import Entry
from runs import services as run_services
from tests.waiting import wait_for
from tests.webhooks.conftest import make_webhook
from webhooks import services
from webhooks.deliverer import Deliverer
from webhooks.models import Delivery, FanoutCursor

pytestmark = pytest.mark.django_db(transaction=True)


def _run(owner: str = "", **fields):
    run, _ = run_services.create_run(mode="redis", spec={"task": "sleep", "input": {}}, owner=owner, **fields)
    return run


def _finish(run) -> None:
    run_services.set_run_status(run.id, "running")
    run_services.set_run_status(run.id, "completed")


@pytest.fixture
def running(private_networks, settings) -> Iterator[Deliverer]:
    settings.WEBHOOK_RETRY_SCHEDULE = "0.1"
    worker = Deliverer(concurrency=4, poll_seconds=0.5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(20)


def test_a_subscriber_gets_exactly_the_events_it_asked_for(receiver, running):
    webhook, secret = make_webhook(receiver.url + "/hook", events=["run.running", "run.completed"])
    run = _run()

    _finish(run)

    requests = receiver.wait_for(2)
    bodies = [Verifier(secret).verify(r.body, r.headers) for r in requests]
    assert sorted(body["type"] for body in bodies) == ["run.completed", "run.running"]
    completed = next(body for body in bodies if body["type"] == "run.completed")
    assert completed["data"]["run"]["id"] == str(run.id)
    assert completed["data"]["run"]["status"] == "completed"
    entry = Entry.objects.get(run_id=run.id, type="run.completed")
    assert Delivery.objects.get(webhook=webhook, event_type="run.completed").journal_id == entry.id
    wait_for(lambda: Delivery.objects.filter(status="succeeded").count() == 2)
    assert len(receiver.requests) == 2


def test_the_journal_wakes_the_deliverer_before_its_poll(receiver, running):
    running.poll_seconds = 30.0  # only a wake-up can be this quick now
    make_webhook(receiver.url + "/hook", events=["run.created"])

    run = _run()

    (request,) = receiver.wait_for(1, timeout=5)
    assert request.json()["data"]["run"]["id"] == str(run.id)


def test_owner_filters_and_creation_time(receiver, private_networks):
    early = _run(owner="team-a")
    mine, _ = make_webhook(receiver.url, events=["run.created", "run.canceled"], owner="team-a")
    every, _ = make_webhook(receiver.url, events=["run.canceled"])
    ours = _run(owner="team-a")
    theirs = _run(owner="team-b")
    run_services.cancel_run(ours.id)
    run_services.cancel_run(theirs.id)

    while services.fan_out(limit=2):
        pass

    made = {(d.webhook_id, d.event_type, d.run_id) for d in Delivery.objects.all()}
    assert made == {
        (mine.id, "run.created", ours.id),
        (mine.id, "run.canceled", ours.id),
        (every.id, "run.canceled", ours.id),
        (every.id, "run.canceled", theirs.id),
    }
    assert early.id not in {run_id for _, _, run_id in made}
    assert FanoutCursor.objects.get().position == Entry.objects.order_by("-id").first().id


def test_an_inactive_subscription_gets_nothing(receiver, private_networks):
    make_webhook(receiver.url, events=["run.created"], active=False)
    _run()

    services.fan_out()

    assert not Delivery.objects.exists()


def test_a_per_run_webhook_gets_its_run_only_signed_with_the_server_secret(
    api, receiver, running, server_secret
):
    response = api.post(
        "/runs?mode=redis",
        {
            "spec": {"task": "sleep"},
            "webhook": {"url": receiver.url + "/run-hook", "events": ["run.canceled"]},
        },
    )
    run_id = response.json()["runId"]
    other = _run()
    run_services.cancel_run(other.id)
    run_services.cancel_run(run_id)

    (request,) = receiver.wait_for(1)
    body = Verifier(server_secret).verify(request.body, request.headers)
    assert (body["type"], body["data"]["run"]["id"]) == ("run.canceled", run_id)
    wait_for(lambda: Delivery.objects.filter(status="succeeded").exists())
    assert Delivery.objects.get().run_webhook_id is not None


def test_fan_out_makes_nothing_twice_and_skips_a_cursor_held_elsewhere(receiver, private_networks):
    make_webhook(receiver.url, events=["run.created"])
    _run()
    services.fan_out()
    FanoutCursor.objects.update(position=0)  # as if the cursor's commit had been lost

    services.fan_out()
    assert Delivery.objects.count() == 1

    _run()
    held = threading.Event()
    done = threading.Event()

    def hold_the_cursor() -> None:
        with transaction.atomic():
            FanoutCursor.objects.select_for_update().get()
            held.set()
            done.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_cursor)
    holder.start()
    held.wait(10)
    try:
        assert services.fan_out() == 0  # another deliverer is fanning out: carry on sending
    finally:
        done.set()
        holder.join(10)
    assert services.fan_out() == 1
    assert Delivery.objects.count() == 2
