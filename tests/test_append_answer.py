"""An append's answer is written without DRF's renderer, byte for byte as it would render it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.renderers import JSONRenderer

from runs.api.append import _answer
from runs.checkpoint_writer import Appended
from runs.models import Checkpoint
from runs.wire import checkpoint_to_wire, format_ts, format_ts_all

DATA = [
    {"note": "héllo wörld ✓ 日本", "sep": "a\u2028b\u2029c", "quote": '"\\\n\t\x01'},
    {"n": [1, 2.5, -0.0, 1e300, None, True, False]},
    "plain \u2028 text",
    None,
    12345678901234567890,
    [],
    {},
    {"nested": {"deep": [{"x": "\u2029"}]}},
]


# What PostgreSQL gives back as it was sent (jsonb orders an object's keys by
# length, then bytes, and writes numbers as numeric), so that the answer to the
# first append (the data sent) and to its replay (the data stored) are both
# what the rows read as.
STORED_AS_SENT = [
    {"a": "héllo wörld ✓ 日本", "sep": "a\u2028b\u2029c", "quote": '"\\\n\t\x01'},
    {"n": [1, 2.5, None, True, False, {"deep": ["\u2029"]}]},
    "plain \u2028 text",
    None,
    12345678901234567890,
]


def _rendered(checkpoints: list[Appended], batch: bool) -> bytes:
    wire = [checkpoint_to_wire(cp) for cp in checkpoints]
    if batch:
        body = {"checkpointIds": [cp["id"] for cp in wire], "checkpoints": wire}
    else:
        body = {"checkpointId": wire[0]["id"], "checkpoint": wire[0]}
    return JSONRenderer().render(body)


def _stamps() -> list[datetime]:
    start = datetime(2026, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC)
    consecutive = [start + timedelta(microseconds=i) for i in range(5)]  # over a second, a day, a year
    return [
        *consecutive,
        start - timedelta(seconds=3),  # earlier than the one before
        start - timedelta(microseconds=1),
        datetime(2026, 12, 1, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),  # not in UTC
        datetime(999, 1, 1, 0, 0, 0, 7, tzinfo=UTC),  # a year of three digits
        datetime(999, 1, 1, 0, 0, 0, 8, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 0, 0, 9, tzinfo=UTC),  # the same second as the one two before it
    ]


def _appended(run_id: object) -> list[Appended]:
    return [
        Appended(
            pk=1000 + i, run_id=run_id, seq=i + 1, ts=ts, type=["step", "ünï\u2028\"type\"", "t"][i % 3],
            data=DATA[i % len(DATA)], key=None if i % 2 else f"key-{i}-ß\u2029\\",
            replayed=bool(i % 3),
        )
        for i, ts in enumerate(_stamps())
    ]  # fmt: skip


def test_the_stamps_of_a_batch_read_as_each_one_alone() -> None:
    stamps = _stamps()
    assert format_ts_all(stamps) == [format_ts(ts) for ts in stamps]
    assert format_ts_all([]) == []


@pytest.mark.parametrize("run_id", [uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4()).upper()])
def test_a_batch_answer_is_the_bytes_drf_renders(run_id: object) -> None:
    checkpoints = _appended(run_id)
    for count in (1, 2, len(checkpoints)):
        assert _answer(checkpoints[:count], True) == _rendered(checkpoints[:count], True)


def test_a_single_answer_is_the_bytes_drf_renders() -> None:
    for checkpoint in _appended(str(uuid.uuid4())):
        assert _answer([checkpoint], False) == _rendered([checkpoint], False)


def test_the_answer_escapes_line_and_paragraph_separators() -> None:
    body = _answer(_appended(str(uuid.uuid4()))[:2], True)
    assert "\u2028".encode() not in body and "\u2029".encode() not in body
    assert b"\\u2028" in body and b"\\u2029" in body
    assert "é".encode() in body  # non-ASCII as is, not escaped


@pytest.mark.django_db
def test_over_http_the_answer_is_what_drf_renders_for_the_rows_stored(api, make_run) -> None:
    run = make_run()
    batch = [
        {"type": "line", "data": STORED_AS_SENT[i % 5], **({"key": f'k-{i}-"\\'} if i % 2 else {})}
        for i in range(30)
    ]

    first = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": batch}, format="json")
    replay = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": batch[1::2]}, format="json")
    single = api.post(f"/runs/{run['id']}/checkpoints", {"type": "one", "data": "\u2029"}, format="json")

    rows = list(Checkpoint.objects.filter(run_id=run["id"]).order_by("seq"))
    assert first.status_code == 201, first.content
    assert first.content == _render_rows(rows[:30], True)
    assert replay.status_code == 200  # every key held: nothing new stored
    assert replay.content == _render_rows(rows[1:30:2], True)
    assert single.status_code == 201
    assert single.content == _render_rows(rows[30:], False)


def _render_rows(rows: list[Checkpoint], batch: bool) -> bytes:
    wire = [checkpoint_to_wire(row) for row in rows]
    if batch:
        return JSONRenderer().render({"checkpointIds": [cp["id"] for cp in wire], "checkpoints": wire})
    return JSONRenderer().render({"checkpointId": wire[0]["id"], "checkpoint": wire[0]})
