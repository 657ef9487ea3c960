"""Delivery latency is observed once per checkpoint and server process, when the
run's tail hands it to its subscribers: not once per subscriber, not for history."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from runs.stream import hub as hub_module
from runs.stream.hub import RunTail
from runs.stream.reads import TailRead
from tests.test_metrics import value
from tests.waiting import wait_for


def read_of(*stamps: datetime) -> TailRead:
    return TailRead(
        status="running",
        final=False,
        complete=True,
        status_frame=b"status",
        end_frame=b"end",
        checkpoints=[(stamp, b"cp") for stamp in stamps],
        was_running_frame=None,
    )


def test_a_tail_observes_each_live_checkpoint_once(monkeypatch):
    observed: list[datetime] = []
    monkeypatch.setattr(hub_module, "observe_delivery", observed.append)
    tail = RunTail(hub=None, run_id=uuid.uuid4())  # type: ignore[arg-type]
    now = datetime.now(UTC)
    history = now - timedelta(minutes=5)
    live = [now + timedelta(milliseconds=n) for n in range(1, 4)]

    tail.observe(read_of(history, live[0], live[1]))
    tail.observe(read_of(live[0], live[1], live[2]))  # read again for a subscriber that was behind

    assert observed == live


@pytest.mark.django_db(transaction=True)
def test_many_subscribers_of_one_run_count_one_delivery_per_checkpoint(asgi_server):
    url = asgi_server.url
    run_id = httpx.post(f"{url}/runs?mode=redis", json={"spec": {"task": "sleep"}}).json()["runId"]

    def deliveries() -> float:
        return value(httpx.get(f"{url}/metrics").text, "orchestrator_event_delivery_seconds_count")

    before = deliveries()
    subscribers = 5
    received = [0] * subscribers
    hello = threading.Barrier(subscribers + 1, timeout=10)

    def subscribe(index: int) -> None:
        with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=10) as stream:
            for line in stream.iter_lines():
                if line == "event: hello":
                    hello.wait()
                elif line == "event: checkpoint":
                    received[index] += 1
                    if received[index] == 2:
                        return

    threads = [threading.Thread(target=subscribe, args=(n,)) for n in range(subscribers)]
    for thread in threads:
        thread.start()
    hello.wait()
    for n in range(2):
        posted = httpx.post(f"{url}/runs/{run_id}/checkpoints", json={"type": "progress", "data": n})
        assert posted.status_code == 201
    for thread in threads:
        thread.join(10)

    assert received == [2] * subscribers
    wait_for(lambda: deliveries() >= before + 2, timeout=5, what="the deliveries to be observed")
    assert deliveries() == before + 2
