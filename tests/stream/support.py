"""Helpers for event stream tests: a server with the hub probe, SSE reading,
and writes that commit from the test process (another process than the server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from runs import services
from tests.servers import ServerProcess, running_server

TIMEOUT = httpx.Timeout(15.0)


@contextmanager
def stream_server(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    """uvicorn serving the app with the hub probe; a short keep-alive by default."""
    with running_server(
        tmp_path, app="tests.stream.probe_app:application", **{"SSE_KEEPALIVE_SECONDS": "1", **env}
    ) as server:
        yield server


def append(run_id: str, count: int = 1, type_: str = "step") -> list[str]:
    """Append `count` checkpoints in one transaction; their ts as on the wire."""
    from runs.wire import format_ts

    rows = services.append_checkpoints(run_id, [{"type": type_, "data": {"n": i}} for i in range(count)])
    return [format_ts(row.ts) for row in rows]


def stats(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/_test/stream-stats", timeout=5).json()


def read_events(
    server: ServerProcess,
    run_id: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    stop: Callable[[ServerSentEvent], bool] | None = None,
    on_event: Callable[[ServerSentEvent], None] | None = None,
) -> list[ServerSentEvent]:
    """Events until the server closes the stream, or until `stop(event)` is true;
    no events at all when the server answers 204 (a finished run, nothing newer)."""
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        with connect_sse(
            client, "GET", f"{server.url}/runs/{run_id}/events", params=params, headers=dict(headers or {})
        ) as source:
            if source.response.status_code == 204:
                return events
            assert source.response.status_code == 200, source.response.read()
            for event in source.iter_sse():
                if not event.data:
                    # The leading `retry:` block, or a keep-alive comment that
                    # httpx-sse reports as an empty event once an id was seen.
                    continue
                events.append(event)
                if on_event:
                    on_event(event)
                if stop and stop(event):
                    break
    return events


def checkpoint_seqs(events: list[ServerSentEvent]) -> list[int]:
    return [event.json()["seq"] for event in events if event.event == "checkpoint"]
