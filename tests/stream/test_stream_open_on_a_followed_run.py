"""Streams opening on a run this process already follows start from the run
as its tail last read it (no query of their own while that read is current):
whatever they open into, each must get exactly what follows its hello."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runs import services
from tests.factories import new_run
from tests.stream.support import append, checkpoint_seqs, read_events

pytestmark = pytest.mark.django_db(transaction=True)

APPENDS = 60


# 0: from the snapshot's newest checkpoint on; 1000: more than the run has, so all of them.
@pytest.mark.parametrize("replay", [0, 1000])
def test_streams_opened_while_a_followed_run_is_written_get_exactly_what_follows_their_hello(
    stream_app, replay
):
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    follower_open = threading.Event()
    results: dict[str, list[Any]] = {"follower": [], "late": []}
    lock = threading.Lock()

    def follow() -> None:
        events = read_events(stream_app, run_id, params={"replay": 0}, on_event=lambda e: follower_open.set())
        with lock:
            results["follower"].append(events)

    def open_late() -> None:
        events = read_events(stream_app, run_id, params={"replay": replay})
        with lock:
            results["late"].append(events)

    follower = threading.Thread(target=follow)
    follower.start()
    assert follower_open.wait(15)
    late: list[threading.Thread] = []
    for n in range(1, APPENDS + 1):
        append(run_id)
        if n % 3 == 0:
            late.append(threading.Thread(target=open_late))
            late[-1].start()
    services.set_run_status(run_id, "completed")
    for thread in [follower, *late]:
        thread.join(30)

    assert checkpoint_seqs(results["follower"][0]) == list(range(1, APPENDS + 1))
    assert len(results["late"]) == APPENDS // 3
    for events in results["late"]:
        assert events[0].event == "hello"
        count = events[0].json()["run"]["checkpointCount"]
        first = max(1, count - replay + 1)
        assert checkpoint_seqs(events) == list(range(first, APPENDS + 1)), count
        assert events[-1].event == "end"
