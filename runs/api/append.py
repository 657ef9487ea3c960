"""`POST /runs/{id}/checkpoints`, the ingest hot path, as an async view.

Workers call it once per checkpoint, so it is the busiest request the
service serves. A sync DRF view costs a thread hop and DRF's request
wrapping on every call; this view parses, checks and answers on the event
loop and leaves it only for the append, stored in one statement with the
appends other requests make at the same moment (`runs.api.group_commit`).
What it accepts and answers is what `CheckpointCollectionView.post`
declares for OpenAPI, and its errors go through the same handler as every
DRF view's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import JSONRenderer

from orchestrator import db_threads
from orchestrator.errors import exception_handler
from orchestrator.middleware.auth import restricted_owner
from runs import selectors
from runs.api import group_commit
from runs.api.params import require_json_content
from runs.api.parsers import parse_json
from runs.api.views import CheckpointCollectionView
from runs.checkpoint_writer import Appended
from runs.exceptions import RunNotFound, SchemaViolation
from runs.validation import validate
from runs.wire import checkpoint_to_wire

# Bigger bodies are parsed and validated on a thread: a batch of hundreds of
# checkpoints would hold the event loop, and every open event stream with it.
INLINE_BODY_BYTES = 64 * 1024

_renderer = JSONRenderer()


def _items(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    """The checkpoints to append, and whether they came as a batch."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        validate("checkpoint.schema.json#/$defs/appendRequest", body)
    # appendRequest is oneOf(checkpointInput, checkpointBatch), and only a
    # batch has "checkpoints": a body is valid exactly when it is valid as the
    # branch its keys choose, which is the one worth checking (and naming in
    # errors) on the busiest path.
    if "checkpoints" not in body:
        validate("checkpoint.schema.json#/$defs/checkpointInput", body)
        _refuse_blank_types([body], lambda index: "type")
        return [body], False
    validate("checkpoint.schema.json#/$defs/checkpointBatch", body)
    batch: list[dict[str, Any]] = body["checkpoints"]
    _refuse_blank_types(batch, lambda index: f"checkpoints[{index}].type")
    return batch, True


def _refuse_blank_types(items: list[dict[str, Any]], field: Callable[[int], str]) -> None:
    """A 422 for a `type` of nothing but whitespace (the schema's pattern
    knows ECMA-262's whitespace; this also catches the rest of Unicode's)."""
    blank = {
        field(index): ["must not be blank"] for index, item in enumerate(items) if not item["type"].strip()
    }
    if blank:
        raise SchemaViolation(blank)


def _check_owner(run_id: str, owner: str) -> None:
    run = selectors.get_run(run_id)
    if run is None or run.owner != owner:
        raise RunNotFound()


def _created(checkpoints: list[Appended], batch: bool) -> HttpResponse:
    wire = [checkpoint_to_wire(cp) for cp in checkpoints]
    if batch:
        body: dict[str, Any] = {"checkpointIds": [cp["id"] for cp in wire], "checkpoints": wire}
    else:
        body = {"checkpointId": wire[0]["id"], "checkpoint": wire[0]}
    # 200 when nothing new was stored: every checkpoint was a replay of its key.
    status = 200 if all(cp.replayed for cp in checkpoints) else 201
    return HttpResponse(_renderer.render(body), status=status, content_type="application/json")


async def append_checkpoints(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        require_json_content(request)
        raw = request.body
        if len(raw) <= INLINE_BODY_BYTES:
            items, batch = _items(raw)
        else:
            items, batch = await sync_to_async(_items, thread_sensitive=False)(raw)
        owner = restricted_owner(request)
        if owner is not None:
            # A tenant's key (workers' run tokens are never limited): one more read.
            await db_threads.run(_check_owner, run_id, owner)
        created = await group_commit.append(run_id, items)
    except Exception as exc:  # every failure becomes the one JSON error shape
        # Off the loop: a database error makes the handler check the pool.
        return await sync_to_async(exception_handler)(exc, {})
    return _created(created, batch)


def checkpoints_view() -> Any:
    """The view of `/runs/{id}/checkpoints`: POST here, other methods to the DRF view."""
    drf_view = sync_to_async(CheckpointCollectionView.as_view())

    async def checkpoints(request: HttpRequest, run_id: str) -> HttpResponse:
        if request.method == "POST":
            return await append_checkpoints(request, run_id)
        return await drf_view(request, run_id=run_id)

    # What drf-spectacular reads to document the route from the DRF view.
    checkpoints.cls = CheckpointCollectionView
    checkpoints.initkwargs = {}
    return checkpoints
