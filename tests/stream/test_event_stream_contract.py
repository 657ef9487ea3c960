"""The event stream as the wire contract describes it, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from runs import services
from tests.conftest import assert_wire
from tests.factories import new_run
from tests.stream.support import append, checkpoint_seqs, read_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stream_opens_with_retry_then_hello_without_an_id(stream_app):
    run_id = str(new_run().pk)
    with httpx.stream("GET", f"{stream_app.url}/runs/{run_id}/events", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if text.count("\n\n") >= 2:
                break
    retry_block, hello_block = text.split("\n\n")[:2]
    assert retry_block.startswith("retry: ")
    assert hello_block.startswith("event: hello\ndata: ")
    assert "id:" not in hello_block


def test_replay_sends_the_last_ten_by_default_then_live_checkpoints_follow(stream_app):
    run_id = str(new_run().pk)
    append(run_id, 15)

    def on_event(event):
        if event.event == "checkpoint" and event.json()["seq"] == 15:
            append(run_id, 3)

    events = read_events(
        stream_app,
        run_id,
        on_event=on_event,
        stop=lambda e: e.event == "checkpoint" and e.json()["seq"] == 18,
    )

    assert events[0].event == "hello"
    assert_wire("event.schema.json#/$defs/hello", events[0].json())
    assert checkpoint_seqs(events) == list(range(6, 19))
    for event in events[1:]:
        assert event.id == event.json()["ts"]
        assert_wire("checkpoint.schema.json#/$defs/checkpoint", event.json())


@pytest.mark.parametrize(("replay", "first_seq"), [("0", None), ("3", 3), ("1000", 1)])
def test_replay_parameter_picks_how_many_to_replay(stream_app, replay, first_seq):
    run_id = str(new_run().pk)
    append(run_id, 5)
    services.set_run_status(run_id, "canceled")

    events = read_events(stream_app, run_id, params={"replay": replay})

    seqs = checkpoint_seqs(events)
    assert seqs == ([] if first_seq is None else list(range(first_seq, 6)))
    assert events[-1].event == "end"


@pytest.mark.parametrize("replay", ["-1", "1001", "ten"])
def test_replay_out_of_range_is_a_400(stream_app, replay):
    response = httpx.get(f"{stream_app.url}/runs/{new_run().pk!s}/events", params={"replay": replay})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_parameter"
    assert response.json()["details"] == {"parameter": "replay"}


def test_resume_by_header_or_query_sends_exactly_what_came_after(stream_app):
    run_id = str(new_run().pk)
    stamps = append(run_id, 30)
    services.set_run_status(run_id, "running")
    services.set_run_status(run_id, "completed")

    by_query = read_events(stream_app, run_id, params={"lastEventId": stamps[19]})
    by_header = read_events(stream_app, run_id, headers={"Last-Event-ID": stamps[24]})
    header_wins = read_events(
        stream_app, run_id, params={"lastEventId": stamps[0]}, headers={"Last-Event-ID": stamps[27]}
    )

    assert checkpoint_seqs(by_query) == list(range(21, 31))
    assert checkpoint_seqs(by_header) == list(range(26, 31))
    assert checkpoint_seqs(header_wins) == [29, 30]


@pytest.mark.parametrize(
    ("where", "value"),
    [("header", "yesterday"), ("query", "2026-13-01T00:00:00Z"), ("query", "1700000000")],
)
def test_a_malformed_resume_point_is_a_400_json_error(stream_app, where, value):
    url = f"{stream_app.url}/runs/{new_run().pk!s}/events"
    if where == "header":
        response = httpx.get(url, headers={"Last-Event-ID": value})
    else:
        response = httpx.get(url, params={"lastEventId": value})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_parameter"
    assert body["requestId"]


@pytest.mark.parametrize("run_id", ["8b0f7c66-8f5e-4a55-9d7e-2f9d1b1d9a01", "not-a-uuid"])
def test_an_unknown_run_is_a_404_before_any_stream(stream_app, run_id):
    response = httpx.get(f"{stream_app.url}/runs/{run_id}/events")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "run not found"


def test_other_methods_get_a_405_json_error(stream_app):
    response = httpx.post(f"{stream_app.url}/runs/{new_run().pk!s}/events")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("final", ["completed", "failed", "canceled"])
def test_a_final_status_sends_status_then_end_after_every_checkpoint_and_closes(stream_app, final):
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    stamps = append(run_id, 4)

    def on_event(event):
        if event.event == "checkpoint" and event.json()["seq"] == 4:
            append(run_id, 2)
            services.set_run_status(run_id, final, error={"code": "boom", "message": "x"})

    events = read_events(stream_app, run_id, on_event=on_event)

    assert [e.event for e in events[-2:]] == ["status", "end"]
    assert checkpoint_seqs(events) == [1, 2, 3, 4, 5, 6]
    end = events[-1]
    assert end.json()["status"] == final
    assert_wire("event.schema.json#/$defs/end", end.json())
    assert end.id > stamps[-1]
    assert end.id == events[-3].json()["ts"]  # the last checkpoint's

    again = httpx.get(f"{stream_app.url}/runs/{run_id}/events", headers={"Last-Event-ID": end.id})
    assert again.status_code == 204


def test_a_finished_run_without_checkpoints_ends_with_its_finished_at(stream_app):
    run_id = str(new_run().pk)
    services.cancel_run(run_id)

    events = read_events(stream_app, run_id)

    assert [e.event for e in events] == ["hello", "end"]
    assert events[-1].id == events[-1].json()["run"]["finishedAt"]
    again = httpx.get(f"{stream_app.url}/runs/{run_id}/events", params={"lastEventId": events[-1].id})
    assert again.status_code == 204


def test_a_resume_of_a_finished_run_with_newer_checkpoints_streams_them_then_ends(stream_app):
    run_id = str(new_run().pk)
    stamps = append(run_id, 3)
    services.set_run_status(run_id, "failed")

    events = read_events(stream_app, run_id, headers={"Last-Event-ID": stamps[0]})

    assert checkpoint_seqs(events) == [2, 3]
    assert events[-1].event == "end"


RUNNING_THEN_COMPLETED = [("status", "running"), ("status", "completed"), ("end", "completed")]


def test_status_changes_from_another_process_arrive_as_status_events(stream_app):
    run_id = str(new_run().pk)

    def on_event(event):
        if event.event == "hello":
            services.set_run_status(run_id, "running")
        elif event.event == "status" and event.json()["status"] == "running":
            services.set_run_status(run_id, "completed")

    events = read_events(stream_app, run_id, on_event=on_event)

    assert [(e.event, e.json()["status"]) for e in events[1:]] == RUNNING_THEN_COMPLETED


def test_a_run_that_starts_and_finishes_between_two_reads_still_reports_running(stream_app):
    from django.db import transaction

    run_id = str(new_run().pk)

    def on_event(event):
        if event.event == "hello":
            with transaction.atomic():  # both changes commit, and wake the stream, at once
                services.set_run_status(run_id, "running")
                services.set_run_status(run_id, "completed")

    events = read_events(stream_app, run_id, on_event=on_event)

    assert [(e.event, e.json()["status"]) for e in events[1:]] == RUNNING_THEN_COMPLETED
    running = events[1].json()
    assert_wire("event.schema.json#/$defs/status", running)
    assert running["run"]["status"] == "running" and running["run"]["finishedAt"] is None


def test_on_the_wire_only_checkpoints_and_end_carry_an_id(stream_app):
    run_id = str(new_run().pk)
    append(run_id, 2)
    services.set_run_status(run_id, "running")
    services.set_run_status(run_id, "completed")

    text = httpx.get(f"{stream_app.url}/runs/{run_id}/events", timeout=10).text
    blocks = [block for block in text.split("\n\n") if block]

    names = [next(line[7:] for line in b.splitlines() if line.startswith("event: ")) for b in blocks[1:]]
    assert names == ["hello", "checkpoint", "checkpoint", "end"]
    with_id = [name for name, b in zip(names, blocks[1:], strict=True) if b.startswith("id: ")]
    assert with_id == ["checkpoint", "checkpoint", "end"]


def test_an_idle_stream_gets_keep_alive_comments(stream_app):
    run_id = str(new_run().pk)
    with httpx.stream("GET", f"{stream_app.url}/runs/{run_id}/events", timeout=10) as response:
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if ": keep-alive\n\n" in text:
                break
    assert ": keep-alive\n\n" in text


def test_the_openapi_document_lists_the_stream_as_text_event_stream(stream_app):
    document = httpx.get(f"{stream_app.url}/openapi.json").json()
    operation = document["paths"]["/runs/{run_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"200", "204", "400", "404"} <= set(operation["responses"])
