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

import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from rest_framework.utils.encoders import JSONEncoder

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
from runs.wire import format_ts_all

# Bigger bodies are parsed and validated on a thread: a batch of hundreds of
# checkpoints would hold the event loop, and every open event stream with it.
INLINE_BODY_BYTES = 64 * 1024

# The answer is written here rather than by DRF's JSONRenderer, with the
# bytes it would write: its encoder class and settings (compact, non-ASCII
# as is, no NaN), and U+2028/2029 escaped. Building a hundred wire dicts and
# rendering them was a fifth of a worker's time on batches.
_encoder = JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_string = json.encoder.encode_basestring


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
    # 200 when nothing new was stored: every checkpoint was a replay of its key.
    status = 200 if all(cp.replayed for cp in checkpoints) else 201
    return HttpResponse(_answer(checkpoints, batch), status=status, content_type="application/json")


def _value_encoder() -> Callable[[Any, int], Any]:
    """What JSONEncoder.encode runs for a value, made once per answer: its
    text's pieces, from the C encoder where there is one.

    The documented `encode` makes a new C encoder on every call, which cost
    1.3-2.4 times this whole answer for a hundred checkpoints. json.encoder's
    `c_make_encoder` is not documented (nor `encode_basestring`, used above):
    without it, the documented way serves."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value, _level: (_encoder.encode(value),)
    return make({}, _encoder.default, _string, None, ":", ",", False, False, False)


def _answer(checkpoints: list[Appended], batch: bool) -> bytes:
    """The JSON of `checkpoint_to_wire` for each, as `{"checkpointIds", "checkpoints"}`
    (or `{"checkpointId", "checkpoint"}` for one): the same keys, order and
    bytes, without a dict per checkpoint."""
    value = _value_encoder()
    ids = [_string(str(cp.pk)) for cp in checkpoints]
    run, run_text = None, ""
    parts: list[str] = []
    stamps = format_ts_all(cp.ts for cp in checkpoints)
    for cp, id_text, ts_text in zip(checkpoints, ids, stamps, strict=True):
        if cp.run_id is not run:  # one run per answer: its text is written once
            run, run_text = cp.run_id, _string(str(cp.run_id))
        # type and key are strings (the schema's, or a stored row's) and seq
        # an int: written as the encoder writes them, without its call.
        parts.append(
            f'{{"id":{id_text},"runId":{run_text},"ts":"{ts_text}","type":{_string(cp.type)},"data":'
        )
        parts.extend(value(cp.data, 0))
        if cp.key is None:
            parts.append(f',"seq":{cp.seq:d}')
        else:
            parts.append(f',"seq":{cp.seq:d},"key":{_string(cp.key)}')
        parts.append("}")
        parts.append(",")
    parts.pop()
    if batch:
        head = '{"checkpointIds":[' + ",".join(ids) + '],"checkpoints":['
        tail = "]}"
    else:
        head, tail = '{"checkpointId":' + ids[0] + ',"checkpoint":', "}"
    text = head + "".join(parts) + tail
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


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
