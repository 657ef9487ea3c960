"""Reading the live run list (GET /runs/events) in stream tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.servers import ServerProcess
from tests.stream.support import TIMEOUT, stats
from tests.waiting import wait_for


def wait_live(server: ServerProcess, count: int = 1) -> None:
    """Until `count` list streams of the server have caught up and follow live entries."""
    wait_for(lambda: stats(server)["listLive"] >= count, what=f"{count} live run list stream(s)")


def read_list(
    server: ServerProcess,
    *,
    until: Callable[[list[ServerSentEvent]], bool],
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    on_open: Callable[[], None] | None = None,
) -> list[ServerSentEvent]:
    """The list stream's events (not keep-alives) until `until(events)`; `on_open`
    runs once the response has started, before anything is read."""
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        with connect_sse(
            client, "GET", f"{server.url}/runs/events", params=params, headers=dict(headers or {})
        ) as source:
            assert source.response.status_code == 200, source.response.read()
            assert source.response.headers["content-type"].startswith("text/event-stream")
            if on_open:
                on_open()
            if until(events):
                return events
            for event in source.iter_sse():
                if not event.data:
                    continue  # the leading `retry:`, or a keep-alive
                events.append(event)
                if until(events):
                    break
    return events


def entries(events: list[ServerSentEvent]) -> list[tuple[int, str, str]]:
    """(journal id, type, run id) of each `run` event, in order."""
    return [(int(e.id), e.json()["type"], e.json()["runId"]) for e in events if e.event == "run"]
