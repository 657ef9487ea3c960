"""What a fuzzer found: input that used to reach the database or a conversion
unchecked and answer 500. Each is a 4xx naming what is wrong."""

from __future__ import annotations

import base64
import uuid

import pytest

pytestmark = pytest.mark.django_db

OVERFLOWING = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]


def test_u0000_in_a_query_parameter_is_a_400_naming_it(api):
    listed = api.get("/runs?owner=a%00b")
    created = api.post("/runs?mode=redis&owner=a%00b", {"spec": {"task": "sleep"}})

    for response in (listed, created):
        assert response.status_code == 400
        assert response.json()["code"] == "bad_parameter"
        assert response.json()["details"] == {"parameter": "owner"}


def test_an_owner_filter_longer_than_an_owner_is_a_400(api):
    response = api.get("/runs?owner=" + "o" * 201)

    assert response.status_code == 400
    assert response.json()["details"] == {"parameter": "owner"}


@pytest.mark.parametrize("stamp", OVERFLOWING)
@pytest.mark.parametrize("name", ["createdAfter", "createdBefore"])
def test_a_timestamp_past_the_calendar_in_utc_bounds_the_run_list_like_its_last_instant(
    api, make_run, name, stamp
):
    run = make_run()
    response = api.get(f"/runs?{name}={stamp.replace('+', '%2B')}")

    assert response.status_code == 200
    after_everything = (name == "createdAfter") == stamp.startswith("9999")
    expected = [] if after_everything else [run["id"]]
    assert [listed["id"] for listed in response.json()["runs"]] == expected


@pytest.mark.parametrize("stamp", OVERFLOWING)
def test_a_cursor_holding_a_timestamp_past_the_calendar_is_no_500(api, make_run, stamp):
    run = make_run()
    cursor = base64.urlsafe_b64encode(f"{stamp}|{uuid.uuid4()}".encode()).decode().rstrip("=")

    response = api.get(f"/runs?cursor={cursor}")

    assert response.status_code == 200
    expected = [run["id"]] if stamp.startswith("9999") else []
    assert [listed["id"] for listed in response.json()["runs"]] == expected


@pytest.mark.django_db(transaction=True)  # the stream reads on threads of its own: committed data
@pytest.mark.parametrize("stamp", OVERFLOWING)
def test_a_timestamp_past_the_calendar_is_no_500_on_checkpoints_and_the_stream(api, make_run, stamp):
    run = make_run()
    api.post(f"/runs/{run['id']}/checkpoints", {"type": "t"})
    api.delete(f"/runs/{run['id']}")
    quoted = stamp.replace("+", "%2B")

    after = api.get(f"/runs/{run['id']}/checkpoints?after={quoted}")
    query = api.get(f"/runs/{run['id']}/events?lastEventId={quoted}")
    header = api.get(f"/runs/{run['id']}/events", **{"Last-Event-ID": stamp})

    listed = [cp["type"] for cp in after.json()["checkpoints"]]
    assert listed == ([] if stamp.startswith("9999") else ["t"])
    if stamp.startswith("9999"):  # after the last checkpoint of a final run: nothing more to send
        assert (query.status_code, header.status_code) == (204, 204)
        assert "Content-Type" not in query.headers
    else:
        assert (query.status_code, header.status_code) == (200, 200)


def test_more_than_six_fraction_digits_are_read_to_the_microsecond():
    from runs.wire import format_ts, parse_ts

    assert format_ts(parse_ts("2026-01-02T03:04:05.123456789+01:00")) == "2026-01-02T02:04:05.123456Z"


def _fields(response) -> list[str]:
    assert response.status_code == 422, response.content
    return list(response.json()["details"]["fields"])


def test_a_number_that_parses_to_infinity_is_a_422_naming_its_field(api, make_run):
    run = make_run(spec={"task": "sleep"})
    huge = "1e400"

    metadata = api.post("/runs?mode=redis", f'{{"spec": {{"task": "sleep"}}, "metadata": {{"x": {huge}}}}}')
    spec_input = api.post("/runs?mode=redis", f'{{"spec": {{"task": "sleep", "input": [-{huge}]}}}}')
    plan = api.post("/runs", f'{{"spec": {{"task": "sleep", "input": {huge}}}}}')
    data = api.post(f"/runs/{run['id']}/checkpoints", f'{{"type": "t", "data": {{"v": {huge}}}}}')
    error = api.patch(
        f"/runs/{run['id']}", f'{{"status": "failed", "error": {{"code": "x", "message": "m", "n": {huge}}}}}'
    )

    assert _fields(metadata) == ["metadata.x"]
    assert _fields(spec_input) == ["spec.input[0]"]
    assert _fields(plan) == ["spec.input"]
    assert _fields(data) == ["data.v"]
    assert _fields(error) == ["error.n"]
    assert api.get(f"/runs/{run['id']}").json()["run"]["status"] == "pending"
