"""Dependencies (`dependsOn`): a run waits until the runs it names complete,
and fails with `dependency_failed` when one fails or is canceled."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from journal import selectors as journal
from runs import admission, services
from runs.exceptions import SchemaViolation
from runs.models import Run
from tests.conftest import assert_wire
from tests.redis_workers import WorkerProcess
from tests.threads import in_thread
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 0}}


def queued_ids(queue) -> list[str]:
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]


def create(*after: Run, **fields) -> Run:
    run, _ = services.create_run(mode="redis", spec=SPEC, depends_on=[r.pk for r in after], **fields)
    return run


def complete(run: Run) -> None:
    services.set_run_status(run.pk, "running")
    services.set_run_status(run.pk, "completed")


def fresh(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def test_a_run_waits_for_its_dependency_and_is_handed_over_when_it_completes(queue) -> None:
    first = create()
    second = create(first)

    assert second.status == "pending"
    assert second.waiting_for == {"reason": "dependencies", "runIds": [str(first.pk)]}
    assert queued_ids(queue) == [str(first.pk)]

    complete(first)

    assert fresh(second).waiting_for is None and fresh(second).status == "pending"
    assert queued_ids(queue) == [str(first.pk), str(second.pk)]


def test_a_run_with_two_dependencies_waits_for_both(queue) -> None:
    a, b = create(), create()
    c = create(a, b)

    complete(b)
    assert fresh(c).waiting_for == {"reason": "dependencies", "runIds": [str(a.pk)]}
    assert str(c.pk) not in queued_ids(queue)

    complete(a)
    assert fresh(c).waiting_for is None and str(c.pk) in queued_ids(queue)


def test_a_failure_fails_the_whole_chain_below_it(queue) -> None:
    a = create()
    b = create(a)
    c = create(b)
    d = create(a, c)

    services.set_run_status(a.pk, "running")
    services.set_run_status(a.pk, "failed", error={"code": "task_error", "message": "boom"})

    for run in (b, c, d):
        failed = fresh(run)
        assert failed.status == "failed", run
        assert failed.error["code"] == "dependency_failed"
        assert failed.waiting_for is None
        assert [entry.type for entry in journal.entries_of_run(run.pk)] == ["run.created", "run.failed"]
    assert fresh(b).error["dependencyId"] == str(a.pk)
    assert fresh(c).error["dependencyId"] == str(b.pk)
    assert fresh(d).error["dependencyId"] in (str(a.pk), str(c.pk)), "whichever reached it first"
    assert queued_ids(queue) == [str(a.pk)]


def test_a_canceled_dependency_fails_the_run(queue) -> None:
    a = create()
    b = create(a)

    services.cancel_run(a.pk)

    assert fresh(b).status == "failed" and "canceled" in fresh(b).error["message"]


def test_a_retrying_dependency_keeps_its_dependents_waiting(queue) -> None:
    a, _ = services.create_run(mode="redis", spec=SPEC, retry={"maxAttempts": 2})
    b = create(a)
    services.begin_attempt(a.pk)

    services.finish_attempt(a.pk, 1, "failed", error={"code": "task_error", "message": "boom"})

    assert fresh(a).status == "pending"
    assert fresh(b).waiting_for["reason"] == "dependencies"


def test_dependencies_already_done_decide_at_creation(queue) -> None:
    done = create()
    complete(done)
    broken = create()
    services.cancel_run(broken.pk)

    at_once = create(done)
    failed = create(done, broken)

    assert at_once.waiting_for is None and str(at_once.pk) in queued_ids(queue)
    assert fresh(failed).status == "failed" and fresh(failed).error["code"] == "dependency_failed"
    assert str(failed.pk) not in queued_ids(queue)


def test_run_at_comes_first_then_the_dependencies(queue) -> None:
    a = create()
    run_at = timezone.now() + timedelta(hours=1)
    b = create(a, run_at=run_at)
    assert b.waiting_for["reason"] == "runAt"

    assert admission.admit_due(now=run_at) == 0

    assert fresh(b).waiting_for == {"reason": "dependencies", "runIds": [str(a.pk)]}
    complete(a)
    assert fresh(b).waiting_for is None and str(b.pk) in queued_ids(queue)


def test_a_dependency_that_completes_while_run_at_waits_is_counted_at_run_at(queue) -> None:
    a = create()
    run_at = timezone.now() + timedelta(hours=1)
    b = create(a, run_at=run_at)
    complete(a)
    assert fresh(b).waiting_for["reason"] == "runAt"

    assert admission.admit_due(now=run_at) == 1

    assert str(b.pk) in queued_ids(queue)


def test_a_credential_limited_to_an_owner_cannot_depend_on_another_owners_run(queue) -> None:
    theirs, _ = services.create_run(mode="redis", spec=SPEC, owner="bob")

    with pytest.raises(SchemaViolation) as refused:
        services.create_run(
            mode="redis", spec=SPEC, owner="alice", depends_on=[theirs.pk], visible_to="alice"
        )

    assert refused.value.details["fields"] == {"dependsOn": [f"no run {theirs.pk}"]}


# --- the API ---


def test_post_runs_takes_depends_on_and_shows_it(api, queue) -> None:
    first = api.post("/runs?mode=redis", {"spec": SPEC}).json()["run"]

    response = api.post("/runs?mode=redis", {"spec": SPEC, "dependsOn": [first["id"]]})

    assert response.status_code == 201
    run = response.json()["run"]
    assert_wire("run.schema.json#/$defs/run", run)
    assert run["dependsOn"] == [first["id"]]
    assert run["waitingFor"] == {"reason": "dependencies", "runIds": [first["id"]]}
    assert api.get(f"/runs/{first['id']}").json()["run"]["dependsOn"] == []


@pytest.mark.parametrize(
    "depends_on",
    [
        [str(uuid.uuid4())],
        ["not-a-run-id"],
        [str(uuid.uuid4())] * 2,
        [str(uuid.uuid4()) for _ in range(101)],
        "one",
    ],
)
def test_unknown_malformed_repeated_or_too_many_ids_are_a_422(api, queue, depends_on) -> None:
    response = api.post("/runs?mode=redis", {"spec": SPEC, "dependsOn": depends_on})

    assert response.status_code == 422, response.content
    fields = response.json()["details"]["fields"]
    assert fields and all(name.startswith("dependsOn") for name in fields)
    assert not Run.objects.exists()


def test_a_run_cannot_be_made_to_depend_on_itself_so_no_cycle_can_form(api, queue) -> None:
    # Dependencies are fixed at creation and name runs that exist: the new run's id is unknown then.
    planned = api.post("/runs?mode=plan&target=redis", {"spec": SPEC}).json()["plan"]["run"]["id"]

    response = api.post("/runs?mode=redis", {"spec": SPEC, "dependsOn": [planned]})

    assert response.status_code == 422
    assert response.json()["details"]["fields"]["dependsOn"] == [f"no run {planned}"]


def test_plan_mode_shows_the_dependency_gate(api, queue) -> None:
    first = api.post("/runs?mode=redis", {"spec": SPEC}).json()["run"]["id"]

    steps = api.post("/runs?mode=plan&target=redis", {"spec": SPEC, "dependsOn": [first]}).json()["plan"][
        "steps"
    ]

    assert any(f"until 1 of its 1 dependencies complete ({first})" in step for step in steps)


# --- races, against the real PostgreSQL ---


def test_dependents_created_while_their_dependency_finishes_are_never_left_waiting(queue) -> None:
    for _ in range(5):
        first = create()
        services.set_run_status(first.pk, "running")
        made: list[Run] = []
        start = threading.Barrier(7)

        def make(first: Run = first, start: threading.Barrier = start, made: list[Run] = made) -> None:
            start.wait()
            for _ in range(4):
                made.append(create(first))

        def finish(first: Run = first, start: threading.Barrier = start) -> None:
            start.wait()
            services.set_run_status(first.pk, "completed")

        threads = [in_thread(make) for _ in range(6)] + [in_thread(finish)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert len(made) == 24
        stuck = Run.objects.filter(pk__in=[r.pk for r in made], waiting_for__isnull=False)
        assert not stuck.exists(), "a dependent missed its dependency's finish"


def test_concurrent_failures_down_a_shared_chain_fail_each_run_once(queue) -> None:
    a, b = create(), create()
    for run in (a, b):
        services.set_run_status(run.pk, "running")
    waiting = [create(a, b) for _ in range(10)]
    start = threading.Barrier(2)

    def fail(run: Run) -> None:
        start.wait()
        services.set_run_status(run.pk, "failed", error={"code": "task_error", "message": "x"})

    threads = [in_thread(fail, a), in_thread(fail, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    for run in waiting:
        assert fresh(run).status == "failed"
        assert [e.type for e in journal.entries_of_run(run.pk)] == ["run.created", "run.failed"]


# --- real workers ---


def test_real_workers_run_a_chain_in_order(queue, tmp_path, settings) -> None:
    worker = WorkerProcess(tmp_path, settings.REDIS_KEY_PREFIX, concurrency=4).start()
    try:
        a, _ = services.create_run(mode="redis", spec={"task": "probe", "input": {"seconds": 0.3}})
        b, _ = services.create_run(mode="redis", spec={"task": "probe"}, depends_on=[a.pk])
        c, _ = services.create_run(mode="redis", spec={"task": "probe"}, depends_on=[a.pk, b.pk])
        wait_for(lambda: fresh(c).is_final, timeout=30, what="the chain to end")
    finally:
        worker.stop()

    runs = [fresh(run) for run in (a, b, c)]
    assert [run.status for run in runs] == ["completed"] * 3
    assert runs[0].finished_at <= runs[1].started_at and runs[1].finished_at <= runs[2].started_at
