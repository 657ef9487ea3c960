"""Workers append checkpoints; readers page through them in order."""

from __future__ import annotations

import itertools

import pytest

from runs.wire import parse_ts
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db


def test_a_single_checkpoint_gets_seq_1_and_a_timestamp(api, make_run):
    run = make_run()

    response = api.post(f"/runs/{run['id']}/checkpoints", {"type": "progress", "data": {"pct": 10}})

    assert response.status_code == 201
    body = response.json()
    assert_wire("checkpoint.schema.json#/$defs/appendResponse", body)
    checkpoint = body["checkpoint"]
    assert body["checkpointId"] == checkpoint["id"]
    assert checkpoint["seq"] == 1
    assert checkpoint["runId"] == run["id"]
    assert checkpoint["data"] == {"pct": 10}
    assert api.get(f"/runs/{run['id']}").json()["run"]["checkpointCount"] == 1


def test_a_batch_is_appended_in_order_with_strictly_increasing_ts(api, make_run):
    run = make_run()
    batch = [{"type": "line", "data": i} for i in range(50)]

    response = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": batch})

    assert response.status_code == 201
    body = response.json()
    assert_wire("checkpoint.schema.json#/$defs/appendBatchResponse", body)
    assert [cp["seq"] for cp in body["checkpoints"]] == list(range(1, 51))
    assert [cp["data"] for cp in body["checkpoints"]] == list(range(50))
    stamps = [parse_ts(cp["ts"]) for cp in body["checkpoints"]]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert body["checkpointIds"] == [cp["id"] for cp in body["checkpoints"]]


def test_checkpoints_list_oldest_first_and_page_with_after(api, make_run):
    run = make_run()
    api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [{"type": "t", "data": i} for i in range(5)]})
    url = f"/runs/{run['id']}/checkpoints"

    first = api.get(f"{url}?limit=2").json()
    assert_wire("checkpoint.schema.json#/$defs/checkpointListResponse", first)
    assert [cp["seq"] for cp in first["checkpoints"]] == [1, 2]
    second = api.get(f"{url}?limit=2&after={first['nextCursor']}").json()
    assert [cp["seq"] for cp in second["checkpoints"]] == [3, 4]
    last = api.get(f"{url}?after={second['nextCursor']}").json()
    assert [cp["seq"] for cp in last["checkpoints"]] == [5]
    assert last["nextCursor"] is None


def test_a_finished_run_takes_no_more_checkpoints(api, make_run):
    run = make_run()
    api.delete(f"/runs/{run['id']}")

    response = api.post(f"/runs/{run['id']}/checkpoints", {"type": "late"})

    assert response.status_code == 409
    assert response.json()["code"] == "run_finished"
    assert api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"] == []


def test_checkpoints_of_an_unknown_run_are_404(api):
    url = "/runs/6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11/checkpoints"

    assert api.post(url, {"type": "x"}).status_code == 404
    assert api.get(url).status_code == 404


def test_data_may_be_any_json_value(api, make_run):
    run = make_run()
    url = f"/runs/{run['id']}/checkpoints"

    values = [None, 3, "text", [1, 2], {"nested": {"deep": True}}]
    for value in values:
        assert api.post(url, {"type": "v", "data": value}).status_code == 201

    assert [cp["data"] for cp in api.get(url).json()["checkpoints"]] == values


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\x1f"])
def test_a_blank_type_is_a_422_naming_type(api, make_run, blank):
    run = make_run()

    single = api.post(f"/runs/{run['id']}/checkpoints", {"type": blank})
    batch = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [{"type": "ok"}, {"type": blank}]})

    assert single.status_code == 422
    assert list(single.json()["details"]["fields"]) == ["type"]
    assert batch.status_code == 422
    assert list(batch.json()["details"]["fields"]) == ["checkpoints[1].type"]
    assert api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"] == []


def test_types_are_stored_trimmed(api, make_run):
    run = make_run()

    single = api.post(f"/runs/{run['id']}/checkpoints", {"type": "  progress\n"})
    batch = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [{"type": " a"}, {"type": "b "}]})

    assert single.json()["checkpoint"]["type"] == "progress"
    assert [cp["type"] for cp in batch.json()["checkpoints"]] == ["a", "b"]
    listed = api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"]
    assert [cp["type"] for cp in listed] == ["progress", "a", "b"]


# --- Checkpoint keys: exactly-once appends ---


def test_a_repeated_key_returns_the_stored_checkpoint_with_200_and_stores_nothing(api, make_run):
    run = make_run()
    body = {"type": "progress", "data": {"pct": 10}, "key": "attempt-1/step-1"}

    first = api.post(f"/runs/{run['id']}/checkpoints", body)
    again = api.post(f"/runs/{run['id']}/checkpoints", body)

    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert_wire("checkpoint.schema.json#/$defs/appendResponse", again.json())
    assert first.json()["checkpoint"]["key"] == "attempt-1/step-1"
    listed = api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"]
    assert [cp["seq"] for cp in listed] == [1]
    assert api.get(f"/runs/{run['id']}").json()["run"]["checkpointCount"] == 1


def test_a_repeated_key_with_other_content_is_a_409_idempotency_conflict(api, make_run):
    run = make_run()
    stored = api.post(f"/runs/{run['id']}/checkpoints", {"type": "t", "data": 1, "key": "k"}).json()

    other_data = api.post(f"/runs/{run['id']}/checkpoints", {"type": "t", "data": 2, "key": "k"})
    other_type = api.post(f"/runs/{run['id']}/checkpoints", {"type": "u", "data": 1, "key": "k"})
    in_batch = api.post(
        f"/runs/{run['id']}/checkpoints",
        {"checkpoints": [{"type": "new", "key": "n"}, {"type": "t", "key": "k"}]},
    )

    for response in (other_data, other_type, in_batch):
        assert response.status_code == 409
        assert response.json()["code"] == "idempotency_conflict"
        assert response.json()["details"] == {"key": "k", "checkpointId": stored["checkpointId"]}
    assert [cp["key"] for cp in api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"]] == ["k"]


def test_a_partly_stored_batch_stores_only_the_new_keys_and_answers_each_in_its_place(api, make_run):
    run = make_run()
    first = api.post(
        f"/runs/{run['id']}/checkpoints",
        {"checkpoints": [{"type": "t", "data": i, "key": f"k{i}"} for i in range(3)]},
    )
    retried = [{"type": "t", "data": i, "key": f"k{i}"} for i in range(5)] + [{"type": "free"}]

    response = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": retried})

    assert first.status_code == 201 and response.status_code == 201
    body = response.json()
    assert_wire("checkpoint.schema.json#/$defs/appendBatchResponse", body)
    assert [cp["seq"] for cp in body["checkpoints"]] == [1, 2, 3, 4, 5, 6]
    assert body["checkpoints"][:3] == first.json()["checkpoints"]
    assert [cp.get("key") for cp in body["checkpoints"]] == ["k0", "k1", "k2", "k3", "k4", None]
    again = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": retried[:5]})
    assert again.status_code == 200 and again.json()["checkpoints"] == body["checkpoints"][:5]
    assert api.get(f"/runs/{run['id']}").json()["run"]["checkpointCount"] == 6


def test_a_key_repeated_within_a_batch_is_stored_once(api, make_run):
    run = make_run()
    same = {"type": "t", "data": {"a": 1}, "key": "twice"}

    response = api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [same, {"type": "x"}, same]})
    clash = api.post(
        f"/runs/{run['id']}/checkpoints",
        {"checkpoints": [{"type": "y", "key": "c"}, {"type": "z", "key": "c"}]},
    )

    assert response.status_code == 201
    answered = response.json()["checkpoints"]
    assert [cp["seq"] for cp in answered] == [1, 2, 1]
    assert answered[2] == answered[0]
    assert clash.status_code == 409 and clash.json()["details"] == {"key": "c"}
    assert api.get(f"/runs/{run['id']}").json()["run"]["checkpointCount"] == 2


def test_a_replayed_key_is_answered_after_the_run_finished_and_a_new_one_is_refused(api, make_run):
    run = make_run()
    body = {"type": "t", "key": "last"}
    stored = api.post(f"/runs/{run['id']}/checkpoints", body).json()
    api.delete(f"/runs/{run['id']}")

    assert api.post(f"/runs/{run['id']}/checkpoints", body).json() == stored
    assert api.post(f"/runs/{run['id']}/checkpoints", {"type": "t", "key": "new"}).status_code == 409


@pytest.mark.parametrize("key", ["", "has space", "é", "k" * 201])
def test_a_key_outside_1_to_200_printable_ascii_is_a_422_naming_key(api, make_run, key):
    run = make_run()

    response = api.post(f"/runs/{run['id']}/checkpoints", {"type": "t", "key": key})

    assert response.status_code == 422
    assert list(response.json()["details"]["fields"]) == ["key"]
