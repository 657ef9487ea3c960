"""Delayed runs (`runAt`): held pending, not dispatched, admitted once when due."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import admission, services
from runs.models import Run
from runs.redis.worker import recovery
from runs.wire import format_ts
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 1}}


def queued_ids(queue) -> list[str]:
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]


def in_an_hour() -> datetime:
    return (timezone.now() + timedelta(hours=1)).replace(microsecond=0)


def test_a_run_with_a_future_run_at_is_pending_held_and_not_dispatched(api, queue):
    run_at = in_an_hour()

    response = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": format_ts(run_at)})

    assert response.status_code == 201
    run = response.json()["run"]
    assert_wire("run.schema.json#/$defs/run", run)
    assert run["status"] == "pending"
    assert run["runAt"] == format_ts(run_at)
    assert run["waitingFor"] == {"reason": "runAt", "until": format_ts(run_at)}
    assert queued_ids(queue) == []
    assert api.get(f"/runs/{run['id']}").json()["run"]["waitingFor"]["reason"] == "runAt"


def test_run_at_with_an_offset_is_read_as_that_instant(api, queue):
    response = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": "2999-01-01T10:00:00+02:00"})

    assert response.json()["run"]["runAt"] == "2999-01-01T08:00:00.000000Z"


def test_a_run_at_in_the_past_is_dispatched_at_once(api, queue):
    past = timezone.now() - timedelta(minutes=5)

    run = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": format_ts(past)}).json()["run"]

    assert run["runAt"] == format_ts(past) and run["waitingFor"] is None
    assert queued_ids(queue) == [run["id"]]


def test_a_run_without_run_at_shows_null_for_both_fields(make_run, queue):
    run = make_run(spec=SPEC)

    assert run["runAt"] is None and run["waitingFor"] is None


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01T00:00:00Z", "2026-12-01 10:00", 12, ""])
def test_a_bad_run_at_is_a_422_naming_the_field(api, value):
    response = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": value})

    assert response.status_code == 422
    assert list(response.json()["details"]["fields"]) == ["runAt"]
    assert not Run.objects.exists()


def test_plan_mode_says_when_the_run_would_be_dispatched(api, queue):
    run_at = in_an_hour()

    plan = api.post("/runs?mode=plan&target=redis", {"spec": SPEC, "runAt": format_ts(run_at)}).json()["plan"]

    assert plan["dispatchAt"] == format_ts(run_at)
    assert plan["run"]["waitingFor"] == {"reason": "runAt", "until": format_ts(run_at)}
    assert any("hold the run until runAt" in step for step in plan["steps"])
    assert not Run.objects.exists() and queued_ids(queue) == []


def test_plan_mode_without_run_at_dispatches_now(api):
    before = timezone.now()

    plan = api.post("/runs?mode=plan&target=redis", {"spec": SPEC}).json()["plan"]

    assert plan["dispatchAt"] >= format_ts(before)
    assert not any("runAt" in step for step in plan["steps"])


def test_cancel_works_while_the_run_waits_and_it_is_never_dispatched(api, queue):
    run = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": format_ts(in_an_hour())}).json()["run"]

    response = api.delete(f"/runs/{run['id']}")

    assert response.status_code == 200
    canceled = response.json()["run"]
    assert canceled["status"] == "canceled" and canceled["waitingFor"] is None
    assert admission.admit_due(now=timezone.now() + timedelta(days=1)) == 0
    assert queued_ids(queue) == []


def test_admit_due_hands_over_a_run_once_its_time_has_come(queue):
    run_at = in_an_hour()
    run, _ = services.create_run(mode="redis", spec=SPEC, run_at=run_at)

    assert admission.next_due_at() == run_at
    assert admission.admit_due(now=run_at - timedelta(microseconds=1)) == 0
    assert queued_ids(queue) == []

    assert admission.admit_due(now=run_at) == 1

    assert queued_ids(queue) == [str(run.id)]
    run.refresh_from_db()
    assert run.status == "pending" and run.waiting_for is None and run.not_before is None
    assert run.run_at == run_at
    assert admission.next_due_at() is None
    assert admission.admit_due(now=run_at + timedelta(hours=1)) == 0


def test_a_bulk_hand_over_reads_no_run_again_however_many_are_due(queue):
    def statements_to_hand_over(count: int, run_at: datetime) -> int:
        for _ in range(count):
            services.create_run(mode="redis", spec=SPEC, run_at=run_at, priority=7)
        with CaptureQueriesContext(connection) as queries:
            assert admission.admit_due(now=run_at) == count
        return len(queries)

    first = in_an_hour()
    few = statements_to_hand_over(3, first)
    many = statements_to_hand_over(40, first + timedelta(minutes=1))

    assert many == few
    entries = [fields for _, fields in queue.redis.xrange(queue.keys.stream_for(7))]
    assert len(entries) == 43
    stored = {str(run.id): run for run in Run.objects.all()}
    for fields in entries:
        run = stored[fields["runId"]]
        assert fields["createdAt"] == format_ts(run.created_at)
        assert fields["spec"] == '{"input":{"seconds":1},"task":"sleep"}'
        assert fields["priority"] == "7"


def test_racing_admitters_hand_each_due_run_over_exactly_once(queue):
    run_at = in_an_hour()
    runs = [services.create_run(mode="redis", spec=SPEC, run_at=run_at)[0] for _ in range(60)]
    counts: list[int] = []
    start = threading.Barrier(4)

    def admit() -> None:
        try:
            start.wait()
            counts.append(admission.admit_due(now=run_at, batch_size=7))
        finally:
            connection.close()

    threads = [threading.Thread(target=admit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == len(runs)
    assert sorted(queued_ids(queue)) == sorted(str(run.id) for run in runs)


def test_sweeps_leave_held_runs_alone(queue):
    run, _ = services.create_run(mode="redis", spec=SPEC, run_at=in_an_hour())
    Run.objects.filter(pk=run.pk).update(created_at=datetime(2020, 1, 1, tzinfo=UTC))

    assert recovery.sweep(queue, holder="test", interval_s=1, lease_ms=1000, force=True) == 0
    assert services.requeue_stale_runs(older_than=timedelta(seconds=1)) == []
    assert queued_ids(queue) == []


def test_idempotent_replay_compares_run_at_too(api, queue):
    body = {"spec": SPEC, "runAt": format_ts(in_an_hour())}
    first = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "delayed-1"})
    again = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "delayed-1"})
    other = api.post(
        "/runs?mode=redis",
        {**body, "runAt": format_ts(in_an_hour() + timedelta(minutes=1))},
        **{"Idempotency-Key": "delayed-1"},
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["runId"] == first.json()["runId"]


def test_runs_filter_by_schedule_id(api, queue):
    schedule_id = "6f1c1f5e-0000-4000-8000-000000000001"
    made, _ = services.create_run(
        mode="redis", spec=SPEC, schedule_id=schedule_id, scheduled_for=datetime(2026, 12, 1, tzinfo=UTC)
    )
    services.create_run(mode="redis", spec=SPEC)

    body = api.get(f"/runs?scheduleId={schedule_id}").json()

    assert [run["id"] for run in body["runs"]] == [str(made.id)]
    assert body["runs"][0]["scheduleId"] == schedule_id
    assert body["runs"][0]["scheduledFor"] == "2026-12-01T00:00:00.000000Z"
    assert_wire("run.schema.json#/$defs/runListResponse", body)


def test_a_bad_schedule_id_filter_is_a_400_naming_it(api):
    response = api.get("/runs?scheduleId=nope")

    assert response.status_code == 400
    assert "scheduleId" in response.json()["error"] + str(response.json().get("details"))


def test_a_worker_cannot_start_a_run_a_gate_still_holds(api, queue):
    run_at = in_an_hour()
    run = api.post("/runs?mode=redis", {"spec": SPEC, "runAt": format_ts(run_at)}).json()["run"]

    response = api.patch(f"/runs/{run['id']}", {"status": "running"})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["details"] == {
        "from": "pending",
        "to": "running",
        "waitingFor": {"reason": "runAt", "until": format_ts(run_at)},
    }
    assert Run.objects.get(pk=run["id"]).status == "pending"
    assert api.delete(f"/runs/{run['id']}").status_code == 200  # cancel still works
