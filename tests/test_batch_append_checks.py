"""The checks a batch append passes on its way in and out answer exactly as
the per-value walks they shortcut: what is refused, what is named, and the
text of each timestamp."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from runs import services
from runs.exceptions import SchemaViolation
from runs.models import Checkpoint, Run
from runs.validation import MAX_DEPTH, _name_unstorable, check_storable
from runs.wire import format_ts


def nested(depth: int, leaf: object) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


STORABLE = [
    {},
    [],
    {"checkpoints": [{"type": "progress", "data": {"step": i, "ok": True, "x": None}} for i in range(100)]},
    {"a": [1, 2.5, -0.0, "é", "😀", {"b": []}], "": ""},
    nested(MAX_DEPTH, 1),
    nested(MAX_DEPTH, {}),
    nested(MAX_DEPTH, []),
    1e308,
    "plain",
]
UNSTORABLE = [
    nested(MAX_DEPTH + 1, 1),
    nested(MAX_DEPTH, {"k": 1}),
    nested(MAX_DEPTH, [1]),
    {"a": {"b": "x\x00y"}},
    {"a\x00": 1},
    {"a": ["\ud800"]},
    {"\udfff": 1},
    {"a": [1, float("inf")]},
    {"a": float("-inf")},
    {"a": float("nan")},
    [[[["\udc00"]]]],
    "\x00",
    float("inf"),
]


def named(value: object) -> dict[str, list[str]] | None:
    try:
        _name_unstorable(value)
    except SchemaViolation as refused:
        return refused.details["fields"]
    return None


def checked(value: object) -> dict[str, list[str]] | None:
    try:
        check_storable(value)
    except SchemaViolation as refused:
        return refused.details["fields"]
    return None


@pytest.mark.parametrize("value", STORABLE)
def test_a_storable_value_passes_as_the_naming_walk_passes_it(value):
    assert named(value) is None
    assert checked(value) is None


@pytest.mark.parametrize("value", UNSTORABLE)
def test_an_unstorable_value_is_refused_naming_what_the_naming_walk_names(value):
    refused = named(value)

    assert refused is not None
    assert checked(value) == refused


def test_values_json_does_not_make_are_judged_by_the_naming_walk():
    class Text(str):
        pass

    assert checked({"a": Text("x\x00")}) == named({"a": Text("x\x00")}) is not None
    assert checked({"a": Text("fine"), "b": (1, 2)}) is None


@override_settings(MAX_CHECKPOINT_DATA_BYTES=100)
def test_data_that_fits_only_one_by_one_passes_and_one_over_is_named():
    fits = [{"type": "a", "data": "z" * 90} for _ in range(5)]  # 460 bytes together

    services._check_data_size(fits)
    with pytest.raises(SchemaViolation) as refused:
        services._check_data_size([*fits, {"type": "b", "data": "z" * 99}, {"type": "c"}])

    assert refused.value.details["fields"] == {"checkpoints[5].data": ["101 bytes, over the limit of 100"]}


@override_settings(MAX_CHECKPOINT_DATA_BYTES=100)
def test_a_single_item_over_the_data_limit_is_named():
    with pytest.raises(SchemaViolation):
        services._check_data_size([{"type": "a", "data": "z" * 99}])
    services._check_data_size([{"type": "a", "data": "z" * 98}])


def test_a_timestamp_reads_as_strftime_wrote_it():
    zones = [UTC, ZoneInfo("UTC"), ZoneInfo("Europe/Paris"), timezone(timedelta(hours=-9, minutes=-30))]
    rng = random.Random(17)
    samples = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris")),
    ]
    for _ in range(20_000):
        samples.append(
            datetime(
                rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                rng.randint(0, 59), rng.randint(0, 59), rng.choice([0, rng.randint(0, 999_999)]),
                tzinfo=rng.choice(zones),
            )
        )  # fmt: skip

    for value in samples:
        assert format_ts(value) == value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_ts(None) is None


@pytest.mark.django_db
def test_a_batch_answers_each_checkpoint_as_stored():
    """Each seq and ts of the answer is computed from the run's counters; the
    rows stored must read the same, including after a clock behind the run."""
    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    answers = services.append_checkpoints(run.pk, [{"type": "one"}])
    answers += services.append_checkpoints(run.pk, [{"type": "p", "data": {"i": i}} for i in range(100)])
    ahead = datetime.now(UTC) + timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(last_checkpoint_ts=ahead)
    later = services.append_checkpoints(
        run.pk, [{"type": "k", "key": f"k{i}"} if i % 2 else {"type": "k"} for i in range(7)]
    )
    replayed = services.append_checkpoints(run.pk, [{"type": "k", "key": "k1"}, {"type": "new"}])
    answers += later + replayed

    stored = {c.pk: (c.seq, c.ts, c.type, c.key) for c in Checkpoint.objects.filter(run=run)}
    assert [a.seq for a in answers if not a.replayed] == list(range(1, 110))
    assert all(stored[a.pk] == (a.seq, a.ts, a.type, a.key) for a in answers)
    assert [a.ts for a in later] == [ahead + timedelta(microseconds=i) for i in range(1, 8)]
    assert replayed[0].replayed and replayed[0].pk == later[1].pk
    assert Run.objects.get(pk=run.pk).checkpoint_count == 109
