"""`GET /runs/events`: the live run list, journal entries as Server-Sent Events.

Parameters are checked and the starting point found before the first byte,
so a bad filter or resume point is an ordinary JSON error (400).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from journal import selectors
from journal import services as journal
from orchestrator.errors import database_unavailable, error_response
from orchestrator.middleware.auth import restricted_owner
from runs import metrics
from runs.exceptions import BadParameter, OrchestratorError
from runs.models import Run
from runs.stream import params, sse
from runs.stream.hub import Hub, get_hub
from runs.stream.journal_tail import ListSubscriber, read_entries
from runs.stream.reads import release_connection

MAX_ID_DIGITS = 19  # a bigint


@dataclass(frozen=True)
class ListStart:
    pos: int
    # `event: reset` when the resume point is past what the journal keeps.
    reset: bytes = b""


def _filters(request: HttpRequest, restricted_owner: str | None) -> selectors.EntryFilter:
    query = request.GET
    mode = query.get("mode") or None
    if mode is not None and mode not in Run.Mode.values:
        raise BadParameter("mode", f"must be one of {', '.join(Run.Mode.values)}")
    types = frozenset(part.strip() for part in query.get("type", "").split(",") if part.strip())
    unknown = sorted(types - set(journal.TYPES))
    if unknown:
        raise BadParameter("type", f"unknown type {unknown[0]!r}; one of {', '.join(journal.TYPES)}")
    schedule_id = None
    if query.get("scheduleId"):
        try:
            schedule_id = uuid.UUID(query["scheduleId"])
        except ValueError:
            raise BadParameter("scheduleId", "must be a UUID") from None
    owner = query.get("owner")
    if restricted_owner is not None:
        # A tenant's credential sees its own runs only, whatever it asks for.
        if owner is not None and owner != restricted_owner:
            raise BadParameter("owner", "this credential sees only its own owner's runs")
        owner = restricted_owner
    return selectors.EntryFilter(owner=owner, mode=mode, types=types, schedule_id=schedule_id)


def _resume_point(request: HttpRequest) -> int | None:
    found = params.resume_point(request)
    if found is None:
        return None
    name, raw = found
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        raise BadParameter(name, "must be a journal id (a decimal integer)")
    return int(raw)


def find_start(resume: int | None, replay: int, filters: selectors.EntryFilter) -> ListStart:
    """Where a stream starts: after the resume point, or before the last `replay` entries."""
    try:
        if resume is None:
            return ListStart(pos=selectors.replay_start(replay, filters))
        first_kept = selectors.first_kept_id()
        if first_kept <= resume + 1 <= selectors.next_id():
            return ListStart(pos=resume)
        reason = "expired" if resume + 1 < first_kept else "unknown"
        reset = sse.event("reset", {"reason": reason, "oldestId": str(first_kept)})
        return ListStart(pos=first_kept - 1, reset=reset)
    finally:
        release_connection()


async def _list_events(hub: Hub, subscriber: ListSubscriber, head: bytes) -> AsyncIterator[bytes]:
    keepalive = settings.SSE_KEEPALIVE_SECONDS
    connected_at = time.time()
    metrics.RUN_LIST_STREAMS_OPEN.inc()
    try:
        yield head
        await hub.journal.join(subscriber)
        failures = 0
        while not subscriber.live and not subscriber.done:
            try:
                entries = await hub.db(read_entries, subscriber.pos, hub.batch_size, subscriber.filters)
            except Exception:
                failures += 1
                await hub.recover_reads(failures)
                continue
            failures = 0
            subscriber.catch_up(entries)
            if len(entries) < hub.batch_size:
                subscriber.go_live()
            if subscriber.frames:
                frames, subscriber.frames = subscriber.frames, []
                yield b"".join(frame for frame, _ in frames)
        while True:
            if not subscriber.frames and not subscriber.done:
                subscriber.ready.clear()
                try:
                    async with asyncio.timeout(keepalive):
                        await subscriber.ready.wait()
                except TimeoutError:
                    yield sse.KEEP_ALIVE
                    continue
            frames, subscriber.frames = subscriber.frames, []
            if frames:
                yield b"".join(frame for frame, _ in frames)
                for _, item in frames:
                    # Replayed history would drown the live delivery latency.
                    if item is not None and item.entry.at.timestamp() >= connected_at:
                        metrics.RUN_LIST_DELIVERY_SECONDS.observe(
                            max(0.0, time.time() - item.entry.at.timestamp())
                        )
            if subscriber.done and not subscriber.frames:
                return
    finally:
        hub.journal.leave(subscriber)
        metrics.RUN_LIST_STREAMS_OPEN.dec()


@csrf_exempt
async def run_list_events(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return error_response(405, "method not allowed", "method_not_allowed", headers={"Allow": "GET"})
    try:
        filters = _filters(request, restricted_owner(request))
        resume = _resume_point(request)
        replay = params.replay(request, default=0)
        hub = get_hub()
        start = await hub.db(find_start, resume, replay, filters)
    except OrchestratorError as exc:
        return error_response(exc.status_code, exc.message, exc.code, exc.details, extra=exc.extra)
    except (OperationalError, InterfaceError) as exc:
        return await sync_to_async(database_unavailable)(exc)
    subscriber = ListSubscriber(filters, start.pos)
    head = sse.retry(settings.SSE_RETRY_MS) + start.reset
    return StreamingHttpResponse(
        _list_events(hub, subscriber, head),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
