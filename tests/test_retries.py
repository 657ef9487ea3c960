"""Retries with backoff: a failed attempt with attempts left goes back to
pending, waits for its backoff, and is handed over again by admission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from journal import selectors as journal
from runs import admission, retries, services
from runs.exceptions import AttemptSuperseded
from runs.models import Run
from runs.stream.hub import Subscriber
from runs.stream.reads import read_tail
from runs.wire import run_to_wire
from tests.conftest import assert_wire
from tests.redis_workers import WorkerProcess
from tests.scheduler_processes import SchedulerProcess
from tests.waiting import wait_for

SPEC = {"task": "sleep", "input": {"seconds": 1}}
RETRY = {"maxAttempts": 3, "backoffSeconds": 10, "backoffFactor": 3, "maxBackoffSeconds": 60}
BOOM = {"code": "task_error", "message": "RuntimeError: boom"}


def policy(**fields: float) -> dict:
    return retries.normalise_policy({"maxAttempts": 5, **fields}, None)


# --- the backoff ---


def test_the_backoff_grows_by_the_factor_and_stops_at_the_cap() -> None:
    rule = policy(backoffSeconds=2, backoffFactor=3, maxBackoffSeconds=50)

    delays = [retries.backoff_seconds(rule, attempt, jitter=False) for attempt in range(1, 6)]

    assert delays == [2, 6, 18, 50, 50]


def test_jitter_only_shortens_a_delay_by_at_most_a_fifth() -> None:
    rule = policy(backoffSeconds=10, backoffFactor=1)

    delays = {retries.backoff_seconds(rule, 1) for _ in range(200)}

    assert all(8 <= delay <= 10 for delay in delays)
    assert len(delays) > 100, "the delays are spread, not one value"


def test_a_huge_exponent_is_the_cap_not_an_overflow() -> None:
    rule = policy(backoffSeconds=1, backoffFactor=10, maxBackoffSeconds=30)

    assert retries.backoff_seconds(rule, 10_000, jitter=False) == 30


def test_defaults_fill_a_policy_and_spec_max_attempts_is_the_same_budget() -> None:
    assert retries.normalise_policy({"maxAttempts": 2}, None) == {
        "maxAttempts": 2,
        "backoffSeconds": 1.0,
        "backoffFactor": 2.0,
        "maxBackoffSeconds": 600.0,
    }
    assert retries.normalise_policy(None, {"maxAttempts": 4})["maxAttempts"] == 4
    assert retries.normalise_policy(None, {"task": "x"}) is None


# --- the transition (service layer) ---


def started(retry: dict | None = RETRY, spec: dict | None = None) -> Run:
    run, _ = services.create_run(mode="redis", spec=spec or SPEC, retry=retry)
    return services.begin_attempt(run.pk)


@pytest.mark.django_db(transaction=True)
def test_a_failed_attempt_with_attempts_left_goes_back_to_pending_with_a_backoff(queue) -> None:
    run = started()
    before = timezone.now()

    retried = services.finish_attempt(run.pk, 1, "failed", error=BOOM)

    assert retried.status == "pending" and retried.attempt == 2 and retried.error == BOOM
    assert retried.finished_at is None
    assert before + timedelta(seconds=8) <= retried.not_before <= timezone.now() + timedelta(seconds=10)
    wire = run_to_wire(retried)
    assert_wire("run.schema.json#/$defs/run", wire)
    assert wire["waitingFor"]["reason"] == "backoff" and wire["retry"]["maxAttempts"] == 3
    assert [entry.type for entry in journal.entries_of_run(run.pk)] == [
        "run.created",
        "run.running",
        "run.retrying",
    ]
    assert admission.admit_due(now=retried.not_before - timedelta(milliseconds=1)) == 0
    assert queue.depth() == 1, "the first attempt's entry only (the worker acknowledges it)"


@pytest.mark.django_db(transaction=True)
def test_a_due_retry_is_handed_over_again_and_its_last_attempt_fails_for_good(queue) -> None:
    run = started()
    retried = services.finish_attempt(run.pk, 1, "failed", error=BOOM)
    queue.redis.delete(queue.keys.stream, queue.keys.guard(str(run.pk)))  # as the worker's ack does

    assert admission.admit_due(now=retried.not_before) == 1

    assert [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)] == [str(run.pk)]
    again = services.begin_attempt(run.pk)
    assert again.status == "running" and again.attempt == 2 and again.waiting_for is None
    third = services.finish_attempt(run.pk, 2, "failed", error=BOOM)
    assert third.attempt == 3 and third.waiting_for["until"] > retried.waiting_for["until"]
    admission.admit_due(now=third.not_before)
    services.begin_attempt(run.pk)
    last = services.finish_attempt(run.pk, 3, "failed", error={"code": "exit_code", "message": "exit 1"})
    assert last.status == "failed" and last.attempt == 3 and last.error["code"] == "exit_code"
    types = [entry.type for entry in journal.entries_of_run(run.pk)]
    assert types.count("run.retrying") == 2 and types[-1] == "run.failed"


@pytest.mark.django_db(transaction=True)
def test_cancel_ends_retrying(queue) -> None:
    run = started()
    retried = services.finish_attempt(run.pk, 1, "failed", error=BOOM)

    canceled = services.cancel_run(run.pk)

    assert canceled.status == "canceled" and canceled.waiting_for is None and canceled.not_before is None
    assert admission.admit_due(now=retried.not_before + timedelta(hours=1)) == 0


@pytest.mark.django_db(transaction=True)
def test_without_a_policy_a_failure_is_final(queue) -> None:
    run = started(retry=None)

    assert services.finish_attempt(run.pk, 1, "failed", error=BOOM).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_lost_worker_is_a_retry_of_the_same_budget_taken_over_at_once(queue) -> None:
    run = started(retry={"maxAttempts": 2})

    taken_over = services.begin_attempt(run.pk)  # another worker finds it running: its worker is gone

    assert taken_over.status == "running" and taken_over.attempt == 2
    assert taken_over.error["code"] == "worker_lost"
    assert [entry.type for entry in journal.entries_of_run(run.pk)][-2:] == ["run.retrying", "run.running"]
    spent = services.begin_attempt(run.pk)
    assert spent.status == "failed" and spent.error["code"] == "worker_lost"
    assert "no attempts left" in spent.error["message"]


@pytest.mark.django_db(transaction=True)
def test_a_stale_entry_of_a_run_in_backoff_is_not_started(queue) -> None:
    run = started()
    services.finish_attempt(run.pk, 1, "failed", error=BOOM)

    stale = services.begin_attempt(run.pk)

    assert stale.status == "pending" and stale.waiting_for["reason"] == "backoff"


@pytest.mark.django_db(transaction=True)
def test_a_report_of_an_earlier_attempt_is_refused(queue) -> None:
    run = started()
    services.finish_attempt(run.pk, 1, "failed", error=BOOM)

    with pytest.raises(AttemptSuperseded):
        services.set_run_status(run.pk, "completed", attempt=1)


# --- the run's event stream ---


@pytest.mark.django_db(transaction=True)
def test_a_stream_that_saw_running_gets_a_status_event_for_the_retry(queue) -> None:
    import asyncio

    run = started()
    subscriber = asyncio.run(_subscriber(run))

    services.finish_attempt(run.pk, 1, "failed", error=BOOM)
    subscriber.deliver(read_tail(run.pk, None, 100), max_buffered=100)
    subscriber.deliver(read_tail(run.pk, None, 100), max_buffered=100)

    events = [frame.decode() for frame, _ in subscriber.frames]
    assert len(events) == 1 and events[0].startswith("event: status")
    assert '"status":"pending"' in events[0] and '"attempt":2' in events[0]


async def _subscriber(run: Run) -> Subscriber:
    return Subscriber(run.pk, None, "running", run.attempt)


# --- the API ---


@pytest.mark.django_db(transaction=True)
def test_post_runs_takes_a_retry_policy_and_shows_it(api, queue) -> None:
    response = api.post(
        "/runs?mode=redis", {"spec": SPEC, "retry": {"maxAttempts": 3, "backoffSeconds": 0.5}}
    )

    assert response.status_code == 201
    assert response.json()["run"]["retry"] == {
        "maxAttempts": 3,
        "backoffSeconds": 0.5,
        "backoffFactor": 2.0,
        "maxBackoffSeconds": 600.0,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "retry",
    [
        {},
        {"maxAttempts": 0},
        {"maxAttempts": 21},
        {"maxAttempts": 2, "backoffSeconds": 0},
        {"maxAttempts": 2, "backoffFactor": 0.5},
        {"maxAttempts": 2, "jitter": 1},
    ],
)
def test_a_bad_retry_policy_is_a_422(api, queue, retry) -> None:
    response = api.post("/runs?mode=redis", {"spec": SPEC, "retry": retry})

    assert response.status_code == 422
    assert all(name.startswith("retry") for name in response.json()["details"]["fields"])


@pytest.mark.django_db(transaction=True)
def test_plan_mode_shows_the_retry_gate(api) -> None:
    plan = api.post(
        "/runs?mode=plan&target=redis", {"spec": SPEC, "retry": {"maxAttempts": 3, "backoffSeconds": 2}}
    ).json()["plan"]

    assert any("back to pending" in step and "2 s after the first" in step for step in plan["steps"])
    assert plan["run"]["retry"]["maxAttempts"] == 3


# --- real workers and a real scheduler ---


@pytest.mark.django_db(transaction=True)
def test_a_flaky_task_is_retried_by_real_processes_until_it_succeeds(queue, tmp_path, settings) -> None:
    prefix = settings.REDIS_KEY_PREFIX
    worker = WorkerProcess(tmp_path, prefix).start()
    scheduler = SchedulerProcess(tmp_path, REDIS_KEY_PREFIX=prefix).start()
    try:
        run, _ = services.create_run(
            mode="redis",
            spec={"task": "flaky", "input": {"succeedOn": 3}},
            retry={"maxAttempts": 3, "backoffSeconds": 0.3, "backoffFactor": 2},
        )

        done = wait_for(
            lambda: (fresh := Run.objects.get(pk=run.pk)).is_final and fresh,
            timeout=30,
            what="the run to end",
        )
    finally:
        scheduler.stop()
        worker.stop()

    assert done.status == "completed" and done.attempt == 3
    assert done.error is None, "the attempt that succeeded had no error"
    types = [entry.type for entry in journal.entries_of_run(run.pk)]
    assert types == [
        "run.created",
        "run.running",
        "run.retrying",
        "run.running",
        "run.retrying",
        "run.running",
        "run.completed",
    ]
    attempts = [cp.data["attempt"] for cp in done.checkpoints.order_by("seq")]
    assert attempts == [1, 2, 3]
    starts = [cp.data["t"] for cp in done.checkpoints.order_by("seq")]
    assert starts[1] - starts[0] >= 0.3 * 0.8 and starts[2] - starts[1] >= 0.6 * 0.8, "each backoff waited"
