"""`manage.py runwebhooks` as operators run it: real processes, a real
receiver, SIGKILL mid-delivery, SIGTERM, several at once, a database cut."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook as Verifier

from tests.servers import terminate_connections
from tests.waiting import wait_for
from tests.webhooks.conftest import make_delivery, make_webhook
from tests.webhooks.processes import DelivererProcess
from tests.webhooks.receiver import Answer
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deliverers(tmp_path) -> Iterator[list[DelivererProcess]]:
    started: list[DelivererProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _start(deliverers: list[DelivererProcess], tmp_path, **env: str) -> DelivererProcess:
    process = DelivererProcess(tmp_path, **env).start()
    deliverers.append(process)
    return process


def _status(delivery: Delivery) -> str:
    delivery.refresh_from_db()
    return delivery.status


def test_a_delivery_survives_sigkill_mid_attempt(receiver, deliverers, tmp_path):
    webhook, secret = make_webhook(receiver.url + "/hook")
    held = threading.Event()
    receiver.answer_next(Answer(release=held))
    first = _start(deliverers, tmp_path)
    delivery = make_delivery(webhook)

    receiver.wait_for(1)  # the attempt is in flight, its answer held back
    first.kill()
    held.set()
    _start(deliverers, tmp_path)

    requests = receiver.wait_for(2, timeout=20)
    wait_for(lambda: _status(delivery) == "succeeded", timeout=10, what="the delivery to succeed")
    assert [r.headers["webhook-id"] for r in requests] == [str(delivery.id)] * 2
    Verifier(secret).verify(requests[1].body, requests[1].headers)
    assert delivery.attempts == 2


def test_sigterm_lets_the_attempt_in_flight_finish(receiver, deliverers, tmp_path):
    webhook, _ = make_webhook(receiver.url + "/hook")
    held = threading.Event()
    receiver.answer_next(Answer(release=held))
    process = _start(deliverers, tmp_path)
    delivery = make_delivery(webhook)

    receiver.wait_for(1)
    process.terminate()
    wait_for(lambda: "finishing attempts in flight" in process.log(), what="the deliverer to take the signal")
    held.set()

    assert process.wait() == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert len(receiver.requests) == 1


def test_several_deliverers_send_each_delivery_once(receiver, deliverers, tmp_path):
    webhook, _ = make_webhook(receiver.url + "/hook")
    for _ in range(3):
        _start(deliverers, tmp_path)

    created = [make_delivery(webhook, journal_id=n) for n in range(60)]

    requests = receiver.wait_for(60)
    wait_for(
        lambda: Delivery.objects.filter(status="succeeded").count() == 60, what="every delivery to succeed"
    )
    sent = Counter(r.headers["webhook-id"] for r in requests)
    assert sent == Counter({str(d.id): 1 for d in created})


def test_the_deliverer_heals_after_its_database_connections_are_cut(receiver, deliverers, tmp_path):
    webhook, _ = make_webhook(receiver.url + "/hook")
    process = _start(deliverers, tmp_path)
    make_delivery(webhook, journal_id=1)
    receiver.wait_for(1)

    assert terminate_connections(process.application_name) >= 1
    later = make_delivery(webhook, journal_id=2)

    receiver.wait_for(2, timeout=20)
    wait_for(lambda: _status(later) == "succeeded", what="the later delivery to succeed")
    assert process.proc is not None and process.proc.poll() is None
