"""GET /runs/events over real HTTP: the run journal as a live, resumable list."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from journal import selectors
from journal.models import Entry
from runs import services, states
from tests.conftest import assert_wire
from tests.stream.run_list import entries, read_list, wait_live
from tests.stream.support import stats
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _streams_closed_after(stream_app):
    """The server's list streams end with each test, before the next test's flush."""
    yield
    wait_for(lambda: stats(stream_app)["listSubscribers"] == 0, what="the list streams to close")


def owner() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


def lifecycle(who: str, *, cancel: bool = False) -> str:
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner=who)
    services.set_run_status(run.id, states.RUNNING)
    if cancel:
        services.cancel_run(run.id)
    else:
        services.set_run_status(run.id, states.COMPLETED)
    return str(run.id)


def test_live_entries_arrive_in_order_with_their_ids_and_the_run(stream_app):
    who = owner()
    made: dict[str, str] = {}

    def change() -> None:
        wait_live(stream_app)
        lifecycle(owner())  # someone else's: filtered out
        made["run"] = lifecycle(who)

    events = read_list(
        stream_app, params={"owner": who}, on_open=change, until=lambda ev: len(entries(ev)) == 3
    )

    run_id = made["run"]
    assert [(t, r) for _, t, r in entries(events)] == [
        ("run.created", run_id),
        ("run.running", run_id),
        ("run.completed", run_id),
    ]
    stored = [e.id for e in selectors.entries_of_run(run_id)]
    assert [i for i, _, _ in entries(events)] == stored
    for event in events:
        assert_wire("journal.schema.json#/$defs/entry", event.json())
    assert [e.json()["run"]["status"] for e in events] == ["pending", "running", "completed"]
    assert events[-1].json()["run"]["owner"] == who


def test_replay_sends_the_last_matching_entries_first(stream_app):
    who = owner()
    first, second = lifecycle(who), lifecycle(who, cancel=True)
    lifecycle(owner())

    events = read_list(
        stream_app, params={"owner": who, "replay": "4"}, until=lambda ev: len(entries(ev)) == 4
    )

    assert [(t, r) for _, t, r in entries(events)] == [
        ("run.completed", first),
        ("run.created", second),
        ("run.running", second),
        ("run.canceled", second),
    ]


def test_a_resume_gets_every_entry_missed_exactly_once_by_header_or_query(stream_app):
    who = owner()
    lifecycle(who)
    seen = read_list(stream_app, params={"owner": who, "replay": "3"}, until=lambda ev: len(ev) == 3)
    last_id = seen[-1].id
    # Changes while the client is away, some of them another owner's.
    away = [lifecycle(who, cancel=True), lifecycle(owner()), lifecycle(who)]
    expected = [(e.id, e.type, str(e.run_id)) for e in Entry.objects.filter(owner=who, id__gt=int(last_id))]
    assert len(expected) == 6

    by_header = read_list(
        stream_app,
        params={"owner": who},
        headers={"Last-Event-ID": last_id},
        until=lambda ev: len(entries(ev)) == 6,
    )
    by_query = read_list(
        stream_app, params={"owner": who, "lastEventId": last_id}, until=lambda ev: len(entries(ev)) == 6
    )

    assert entries(by_header) == expected
    assert entries(by_query) == expected
    assert {r for _, _, r in expected} == {away[0], away[2]}


def test_a_resume_and_live_entries_meet_without_a_gap_or_a_repeat(stream_app):
    who = owner()
    lifecycle(who)
    resume_from = selectors.newest_id()
    backlog = [lifecycle(who) for _ in range(5)]

    def more() -> None:
        wait_live(stream_app)
        backlog.append(lifecycle(who))

    events = read_list(
        stream_app,
        params={"owner": who, "lastEventId": str(resume_from)},
        on_open=more,
        until=lambda ev: len(entries(ev)) == 18,
    )

    ids = [i for i, _, _ in entries(events)]
    assert ids == [e.id for e in Entry.objects.filter(owner=who, id__gt=resume_from)]
    assert len(set(ids)) == 18


def test_type_and_mode_filters(stream_app):
    who = owner()
    done = lifecycle(who)
    canceled = lifecycle(who, cancel=True)
    final_only = read_list(
        stream_app,
        params={"owner": who, "type": "run.completed,run.canceled", "replay": "10"},
        until=lambda ev: len(ev) == 2,
    )
    assert [(t, r) for _, t, r in entries(final_only)] == [
        ("run.completed", done),
        ("run.canceled", canceled),
    ]

    def one_more() -> None:
        wait_live(stream_app)
        lifecycle(who)  # redis mode: filtered out by mode=k8s
        services.cancel_run(services.create_run(mode="redis", spec={"task": "sleep"}, owner=who)[0].id)

    # Nothing matches mode=k8s: the stream stays open with keep-alives only.
    with httpx.Client(timeout=httpx.Timeout(15.0)) as client:
        with client.stream(
            "GET", f"{stream_app.url}/runs/events", params={"owner": who, "mode": "k8s"}
        ) as response:
            one_more()
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if b": keep-alive" in received:
                    break
    assert b"event: run" not in received


def test_a_resume_point_older_than_the_journal_keeps_starts_with_a_reset(stream_app):
    who = owner()
    lifecycle(who)
    oldest_lost = selectors.newest_id()
    kept = lifecycle(who, cancel=True)
    first_kept = selectors.entries_of_run(kept)[0].id
    Entry.objects.filter(id__lt=first_kept).delete()  # what retention does

    events = read_list(
        stream_app,
        params={"owner": who, "lastEventId": str(oldest_lost - 2)},
        until=lambda ev: len(ev) == 4,
    )

    assert events[0].event == "reset"
    assert events[0].id == ""  # the reset carries no id: it is no entry to resume after
    assert events[0].json() == {"reason": "expired", "oldestId": str(first_kept)}
    assert_wire("journal.schema.json#/$defs/reset", events[0].json())
    assert [(t, r) for _, t, r in entries(events)] == [
        ("run.created", kept),
        ("run.running", kept),
        ("run.canceled", kept),
    ]


def test_a_resume_point_no_entry_reached_yet_starts_with_a_reset(stream_app):
    lifecycle(owner())
    ahead = selectors.newest_id() + 1000
    events = read_list(stream_app, params={"lastEventId": str(ahead)}, until=lambda ev: len(ev) == 1)
    assert events[0].event == "reset"
    assert events[0].json() == {"reason": "unknown", "oldestId": str(selectors.first_kept_id())}


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"lastEventId": "abc"}, {}, "lastEventId"),
        ({"lastEventId": "-1"}, {}, "lastEventId"),
        ({}, {"Last-Event-ID": "12.5"}, "Last-Event-ID"),
        ({"lastEventId": "9" * 20}, {}, "lastEventId"),
        ({"replay": "1001"}, {}, "replay"),
        ({"replay": "x"}, {}, "replay"),
        ({"type": "run.created,run.exploded"}, {}, "type"),
        ({"mode": "plan"}, {}, "mode"),
        ({"scheduleId": "not-a-uuid"}, {}, "scheduleId"),
    ],
)
def test_bad_parameters_are_a_json_400_naming_them(stream_app, params, headers, field):
    response = httpx.get(f"{stream_app.url}/runs/events", params=params, headers=headers, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_parameter"
    assert body["details"]["parameter"] == field


def test_only_get(stream_app):
    response = httpx.post(f"{stream_app.url}/runs/events", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_many_lists_each_get_exactly_what_their_filters_match(stream_app):
    team_a, team_b = owner(), owner()
    wanted = {
        "a": ({"owner": team_a}, 6),
        "a-again": ({"owner": team_a}, 6),
        "a-final": ({"owner": team_a, "type": "run.completed,run.canceled"}, 2),
        "b": ({"owner": team_b}, 3),
        "everyone": ({}, 9),
    }
    got: dict[str, list[tuple[int, str, str]]] = {}

    def follow(name: str) -> None:
        params, count = wanted[name]
        got[name] = entries(read_list(stream_app, params=params, until=lambda ev: len(entries(ev)) >= count))

    readers = [threading.Thread(target=follow, args=(name,)) for name in wanted]
    for reader in readers:
        reader.start()
    wait_live(stream_app, len(wanted))
    # One more list of team A comes and goes while the others follow it.
    assert read_list(stream_app, params={"owner": team_a}, until=lambda ev: True) == []
    wait_for(lambda: stats(stream_app)["listSubscribers"] == len(wanted), what="the extra list to close")
    a1, b1, a2 = lifecycle(team_a), lifecycle(team_b), lifecycle(team_a, cancel=True)
    for reader in readers:
        reader.join(30)

    everything = [
        (e.id, e.type, str(e.run_id)) for e in Entry.objects.filter(run_id__in=[a1, b1, a2]).order_by("id")
    ]
    assert got["everyone"] == everything
    assert got["a"] == got["a-again"] == [e for e in everything if e[2] in (a1, a2)]
    assert got["a-final"] == [
        e for e in everything if e[1] in ("run.completed", "run.canceled") and e[2] != b1
    ]
    assert got["b"] == [e for e in everything if e[2] == b1]
