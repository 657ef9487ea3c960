"""Open event streams hold no thread each: threads stay flat in subscriber count.

Under DEBUG, Django sends request_started to sync receivers at the start of
every request, on the request's thread. A stream lasts hours, so an executor
of its own per stream would park one thread per open stream.
"""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from tests.factories import new_run
from tests.stream.support import stats, stream_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

STREAMS = 40


def thread_names(server) -> list[str]:
    return httpx.get(f"{server.url}/_test/threads", timeout=5).json()


def test_threads_stay_flat_as_streams_open(tmp_path) -> None:
    with stream_server(tmp_path, DEBUG="true") as server:
        run_id = str(new_run().pk)
        url = f"{server.url}/runs/{run_id}/events"
        with httpx.Client(timeout=15, limits=httpx.Limits(max_connections=STREAMS + 5)) as client:
            with ExitStack() as streams:
                first = streams.enter_context(client.stream("GET", url))
                assert first.status_code == 200
                wait_for(lambda: stats(server)["subscribers"] == 1, what="one subscriber")
                with_one = thread_names(server)

                for _ in range(STREAMS - 1):
                    response = streams.enter_context(client.stream("GET", url))
                    assert response.status_code == 200
                wait_for(lambda: stats(server)["subscribers"] == STREAMS, what=f"{STREAMS} subscribers")
                with_all = thread_names(server)

        # The process's shared pools (the hub's reads, the database threads)
        # may start a few more threads; one per stream would be 39 more.
        assert len(with_all) - len(with_one) <= 8, (with_one, with_all)
        assert sum(name.startswith("streams") for name in with_all) <= 1
