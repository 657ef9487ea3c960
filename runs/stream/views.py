"""`GET /runs/{id}/events`: an async view streaming Server-Sent Events.

Everything that can fail (bad parameters, unknown run) is checked before
the first byte, so those answers are ordinary JSON errors. The stream itself
is written straight to the server (`orchestrator.streaming`), one `send` per
batch of frames, with no timer of its own: the hub's heartbeats wake it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from orchestrator.errors import database_unavailable, error_response
from orchestrator.middleware.auth import restricted_owner
from orchestrator.streaming import DirectStreamingResponse, Send
from runs import metrics, selectors
from runs.exceptions import BadParameter, OrchestratorError, RunNotFound
from runs.stream import params, sse
from runs.stream.hub import Hub, Subscriber, get_hub
from runs.stream.reads import load_run, release_connection
from runs.wire import parse_ts, run_to_wire


@dataclass(frozen=True)
class StreamStart:
    run_id: uuid.UUID
    status: str
    # Stream checkpoints with ts after this (None: from the first).
    pos: datetime | None
    hello: bytes
    attempt: int | None = None
    # The hub's wake count up to which `pos` holds everything committed
    # (None: the run's tail must read for this stream once it subscribes).
    current_at: int | None = None


def _resume_point(request: HttpRequest) -> datetime | None:
    found = params.resume_point(request)
    if found is None:
        return None
    name, raw = found
    try:
        return parse_ts(raw)
    except ValueError:
        raise BadParameter(name, "must be a checkpoint ts (RFC 3339 timestamp)") from None


def replay_start(run_id: uuid.UUID, replay: int) -> datetime | None:
    """The (replay+1)-th newest checkpoint's ts: the last `replay` come after it."""
    try:
        return selectors.nth_newest_checkpoint_ts(run_id, replay)
    finally:
        release_connection()


async def open_stream(
    hub: Hub, run_id: str, resume: datetime | None, replay: int, owner: str | None = None
) -> StreamStart | None:
    """Where a new stream starts; None when a final run has nothing after the resume point.

    `owner`: the only owner whose run the caller may see (a tenant's key).
    """
    try:
        pk = uuid.UUID(run_id)
    except ValueError:
        raise RunNotFound() from None
    run, wakes = await hub.run_snapshot(pk)
    if run is None:
        # A shared read may have begun before this run was created; a 404 must not.
        wakes = hub.wakes
        run = await hub.db(load_run, pk)
    if run is None or (owner is not None and run.owner != owner):
        raise RunNotFound()
    last = run.last_checkpoint_ts
    if resume is not None:
        if run.is_final and (last is None or last <= resume):
            return None
        pos: datetime | None = resume
    elif replay == 0:
        # The run row carries its newest checkpoint's ts, written with it.
        pos = last
    elif run.checkpoint_count <= replay:
        pos = None
    else:
        pos = await hub.db(replay_start, pk, replay)
    # Holding everything up to the snapshot's newest checkpoint, a stream of
    # a run still going needs no read of its own until the run changes.
    current = not run.is_final and (last is None or (pos is not None and pos >= last))
    hello = sse.event("hello", {"runId": str(run.id), "run": run_to_wire(run)})
    return StreamStart(
        run_id=pk,
        status=run.status,
        pos=pos,
        hello=hello,
        attempt=run.attempt,
        current_at=wakes if current else None,
    )


async def next_write(subscriber: Subscriber) -> bytes | None:
    """The next bytes for the client (frames, or a heartbeat); None once the stream is over."""
    while not (subscriber.frames or subscriber.heartbeat):
        if subscriber.done:
            return None
        await subscriber.wait()
    return subscriber.take()


class EventStream(DirectStreamingResponse):
    """One subscriber's stream: the head (retry and hello), then what its run's tail hands it."""

    def __init__(self, hub: Hub, subscriber: Subscriber, head: bytes, current_at: int | None) -> None:
        super().__init__(
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.hub, self.subscriber, self.head, self.current_at = hub, subscriber, head, current_at

    @contextmanager
    def _following(self) -> Iterator[None]:
        metrics.EVENT_STREAMS_OPEN.inc()
        try:
            self.hub.subscribe(self.subscriber, self.current_at)
            yield
        finally:
            self.hub.unsubscribe(self.subscriber)
            metrics.EVENT_STREAMS_OPEN.dec()

    async def write_body(self, send: Send) -> None:
        # Not kept for the stream's life once written.
        head, self.head = self.head, b""
        await send({"type": "http.response.body", "body": head, "more_body": True})
        del head
        with self._following():
            subscriber = self.subscriber
            while (body := await next_write(subscriber)) is not None:
                await send({"type": "http.response.body", "body": body, "more_body": True})

    async def iterate(self) -> AsyncIterator[bytes]:
        head, self.head = self.head, b""
        yield head
        del head
        with self._following():
            while (body := await next_write(self.subscriber)) is not None:
                yield body


@csrf_exempt
async def run_events(request: HttpRequest, run_id: str) -> HttpResponse:
    if request.method != "GET":
        return error_response(405, "method not allowed", "method_not_allowed", headers={"Allow": "GET"})
    try:
        resume = _resume_point(request)
        replay = params.replay(request, default=settings.SSE_DEFAULT_REPLAY)
        hub = get_hub()
        start = await open_stream(hub, run_id, resume, replay, restricted_owner(request))
    except OrchestratorError as exc:
        return error_response(exc.status_code, exc.message, exc.code, exc.details, extra=exc.extra)
    except (OperationalError, InterfaceError) as exc:
        return await sync_to_async(database_unavailable)(exc)
    if start is None:
        # Tells EventSource to stop reconnecting: the run is over and it has everything.
        done = HttpResponse(status=204, headers={"Cache-Control": "no-cache"})
        del done["Content-Type"]  # no body, so no type (Django would say text/html)
        return done
    subscriber = Subscriber(start.run_id, start.pos, start.status, start.attempt)
    head = sse.retry(settings.SSE_RETRY_MS) + start.hello
    return EventStream(hub, subscriber, head, start.current_at)
