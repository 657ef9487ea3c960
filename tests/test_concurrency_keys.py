"""Concurrency keys: never more than `limit` runs of a key handed over or
running at once; the others wait pending and are admitted oldest first."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from runs import admission, concurrency, services
from runs.models import ConcurrencyKey, Run
from runs.wire import run_to_wire
from schedules.scheduler import Scheduler
from tests.conftest import assert_wire
from tests.redis_workers import WorkerProcess
from tests.threads import in_thread
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 0}}
BOOM = {"code": "task_error", "message": "boom"}


def queued_ids(queue) -> list[str]:
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]


def create(key: str = "customer-1", limit: int = 2, **fields) -> Run:
    run, _ = services.create_run(
        mode="redis", spec=SPEC, concurrency_limit={"key": key, "limit": limit}, **fields
    )
    return run


@contextmanager
def key_row_held(key: str = "customer-1") -> Iterator[None]:
    """Another transaction holds the key's row until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def hold_the_key() -> None:
        with transaction.atomic():
            concurrency.lock_key(key)
            locked.set()
            release.wait(30)

    holder = in_thread(hold_the_key)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def fresh(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def finish(run: Run) -> None:
    services.set_run_status(run.pk, "running")
    services.set_run_status(run.pk, "completed")


def test_runs_beyond_the_limit_wait_and_are_admitted_oldest_first_as_slots_free(queue) -> None:
    first, second, third, fourth = (create() for _ in range(4))

    assert third.waiting_for == {"reason": "concurrency", "key": "customer-1", "limit": 2}
    assert fourth.waiting_for["reason"] == "concurrency"
    assert queued_ids(queue) == [str(first.pk), str(second.pk)]

    finish(first)

    assert fresh(third).waiting_for is None and fresh(fourth).waiting_for is not None
    assert queued_ids(queue)[-1] == str(third.pk)
    _, entry = queue.redis.xrange(queue.keys.stream)[-1]
    wire = run_to_wire(fresh(third))
    assert (entry["createdAt"], entry["priority"]) == (wire["createdAt"], "5")
    assert json.loads(entry["spec"]) == SPEC
    services.cancel_run(second.pk)  # a cancel frees a slot too
    assert fresh(fourth).waiting_for is None


def test_other_keys_and_runs_without_a_key_are_not_held(queue) -> None:
    create(limit=1)
    held = create(limit=1)
    other = create(key="customer-2", limit=1)
    free, _ = services.create_run(mode="redis", spec=SPEC)

    assert held.waiting_for is not None
    assert other.waiting_for is None and free.waiting_for is None


def test_canceling_a_waiting_run_admits_nobody(queue) -> None:
    create(limit=1)
    waiting = create(limit=1)
    behind = create(limit=1)

    services.cancel_run(waiting.pk)

    assert fresh(behind).waiting_for["reason"] == "concurrency"


def test_a_retry_gives_its_slot_back_while_it_waits_for_its_backoff(queue) -> None:
    flaky = create(limit=1, retry={"maxAttempts": 2, "backoffSeconds": 60})
    waiting = create(limit=1)
    services.begin_attempt(flaky.pk)

    retried = services.finish_attempt(flaky.pk, 1, "failed", error=BOOM)

    assert fresh(waiting).waiting_for is None, "the slot went to the next in line"
    assert admission.admit_due(now=retried.not_before) == 0
    assert fresh(flaky).waiting_for == {"reason": "concurrency", "key": "customer-1", "limit": 1}
    finish(waiting)
    assert fresh(flaky).waiting_for is None


def test_the_latest_runs_limit_is_the_keys(queue) -> None:
    create(limit=1)
    assert create(limit=1).waiting_for is not None

    raised = create(limit=3)

    assert raised.waiting_for is None
    assert ConcurrencyKey.objects.get(key="customer-1").limit == 3


def test_dependencies_come_before_the_slot(queue) -> None:
    before, _ = services.create_run(mode="redis", spec=SPEC)
    create(limit=1)
    after = create(limit=1, depends_on=[before.pk])
    assert after.waiting_for["reason"] == "dependencies"

    finish(before)

    assert fresh(after).waiting_for == {"reason": "concurrency", "key": "customer-1", "limit": 1}


def test_the_api_takes_and_shows_concurrency(api, queue) -> None:
    body = {"spec": SPEC, "concurrency": {"key": "acme", "limit": 1}}
    api.post("/runs?mode=redis", body)

    run = api.post("/runs?mode=redis", body).json()["run"]

    assert_wire("run.schema.json#/$defs/run", run)
    assert run["concurrency"] == {"key": "acme", "limit": 1}
    assert run["waitingFor"] == {"reason": "concurrency", "key": "acme", "limit": 1}
    for bad in ({"key": "acme"}, {"key": "", "limit": 1}, {"key": "acme", "limit": 0}):
        assert api.post("/runs?mode=redis", {"spec": SPEC, "concurrency": bad}).status_code == 422
    steps = api.post("/runs?mode=plan&target=redis", body).json()["plan"]["steps"]
    assert any("concurrency key 'acme'" in step and "full now" in step for step in steps)


# --- races, against the real PostgreSQL ---


class ActiveSampler:
    """Counts the key's runs holding a slot, as often as it can, from a
    connection of its own: the most it ever saw."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self.thread = in_thread(self._run)

    def _run(self) -> None:
        sql = (
            "SELECT count(*) FROM runs_run WHERE concurrency_key = %s AND "
            "(status = 'running' OR (status = 'pending' AND waiting_for IS NULL))"
        )
        with connection.cursor() as cursor:
            while not self._stop.is_set():
                cursor.execute(sql, [self.key])
                self.most = max(self.most, cursor.fetchone()[0])
                self.samples += 1

    def __enter__(self) -> ActiveSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(10)


def test_creates_and_finishes_racing_from_many_threads_never_exceed_the_limit(queue) -> None:
    limit, key = 3, "race-threads"
    created: list[Run] = []
    start = threading.Barrier(9)
    lock = threading.Lock()

    def creator() -> None:
        start.wait()
        for _ in range(15):
            run = create(key=key, limit=limit)
            with lock:
                created.append(run)

    def finisher() -> None:
        start.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            handed = list(
                Run.objects.filter(concurrency.ACTIVE, concurrency_key=key, status="pending").values_list(
                    "pk", flat=True
                )[:2]
            )
            for pk in handed:
                try:
                    services.set_run_status(pk, "running")
                    services.set_run_status(pk, "completed")
                except services.InvalidTransition:
                    pass  # the other finisher took it
            if (
                len(created) == 90
                and not Run.objects.filter(concurrency_key=key).exclude(status="completed").exists()
            ):
                return

    with ActiveSampler(key) as sampler:
        threads = [in_thread(creator) for _ in range(6)] + [in_thread(finisher) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)

    assert len(created) == 90
    assert set(Run.objects.filter(concurrency_key=key).values_list("status", flat=True)) == {"completed"}
    assert sampler.samples > 100
    assert sampler.most == limit, f"at most {limit} at once, and the limit was reached (saw {sampler.most})"


def test_real_workers_never_run_more_than_the_limit_at_once(queue, tmp_path, settings) -> None:
    limit, key = 2, "race-workers"
    workers = [WorkerProcess(tmp_path, settings.REDIS_KEY_PREFIX, concurrency=4).start() for _ in range(2)]
    start = threading.Barrier(4)
    made: list[Run] = []

    def creator() -> None:
        start.wait()
        for _ in range(10):
            run, _ = services.create_run(
                mode="redis",
                spec={"task": "probe", "input": {"seconds": 0.05}},
                concurrency_limit={"key": key, "limit": limit},
            )
            made.append(run)

    try:
        with ActiveSampler(key) as sampler:
            threads = [in_thread(creator) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            wait_for(
                lambda: not Run.objects.filter(concurrency_key=key).exclude(status="completed").exists(),
                timeout=60,
                what="every run to complete",
            )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.stop()

    assert len(made) == 40
    assert sampler.most <= limit
    # What the tasks saw themselves: never more than `limit` running at once.
    intervals = []
    for run in Run.objects.filter(concurrency_key=key):
        points = {cp.type: cp.data["t"] for cp in run.checkpoints.all()}
        intervals.append((points["start"], points["end"]))
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most <= limit
    assert most == limit, "the workers had room for more: the limit, not the fleet, held them back"


def test_a_run_waiting_for_a_slot_shows_up_within_a_second_of_the_slot_freeing(queue) -> None:
    first = create(limit=1)
    waiting = create(limit=1)
    services.set_run_status(first.pk, "running")
    began = time.monotonic()

    services.set_run_status(first.pk, "completed")

    assert fresh(waiting).waiting_for is None and time.monotonic() - began < 1
    assert fresh(waiting).updated_at - fresh(first).finished_at < timedelta(seconds=1)


def test_a_finish_does_not_wait_for_its_keys_row(queue) -> None:
    first = create(limit=1)
    waiting = create(limit=1)
    services.set_run_status(first.pk, "running")
    finisher = in_thread(lambda: services.set_run_status(first.pk, "completed"))
    try:
        with key_row_held():
            finisher.start()
            # The finish commits while another transaction holds the key; the handover waits for it.
            wait_for(lambda: fresh(first).status == "completed", timeout=10, what="the finish to commit")
            assert fresh(waiting).waiting_for is not None
    finally:
        finisher.join(10)
    assert fresh(waiting).waiting_for is None
    assert queued_ids(queue)[-1] == str(waiting.pk)


def test_a_finish_hands_its_slot_over_in_its_own_commit(queue) -> None:
    first = create(limit=1)
    waiting = create(limit=1)
    services.set_run_status(first.pk, "running")

    services.set_run_status(first.pk, "completed")

    # Stamped with the finish's instant: handed over by the finish's
    # transaction, not by one after it.
    assert fresh(waiting).waiting_for is None
    assert fresh(waiting).updated_at == fresh(first).finished_at
    assert queued_ids(queue)[-1] == str(waiting.pk)


def test_the_handover_only_tries_the_keys_row_and_counts_once_it_holds_it(queue) -> None:
    running = create(limit=1)
    waiting = create(limit=1)
    with key_row_held(), transaction.atomic():
        assert concurrency.hand_over_waiting("customer-1", "redis", timezone.now()) is None
    with transaction.atomic():
        # The row is free now, but the key's one slot is still held.
        assert concurrency.hand_over_waiting("customer-1", "redis", timezone.now()) == (0, [])
    Run.objects.filter(pk=running.pk).update(status="completed")
    with transaction.atomic():
        picked, handed = concurrency.hand_over_waiting("customer-1", "redis", timezone.now())
    assert (picked, [run.pk for run in handed]) == (1, [waiting.pk])
    assert handed[0].spec == SPEC and handed[0].created_at == waiting.created_at
    assert fresh(waiting).waiting_for is None


def test_a_handover_lost_with_its_process_is_made_by_the_schedulers_next_pass(queue) -> None:
    first = create(limit=1)
    waiting = create(limit=1)
    # The finish committed, and its process died before handing the slot over.
    Run.objects.filter(pk=first.pk).update(status="completed", finished_at=timezone.now())
    assert concurrency.keys_with_free_slots() == ["customer-1"]

    Scheduler(max_sleep=0).run_pass()

    assert fresh(waiting).waiting_for is None
    assert queued_ids(queue)[-1] == str(waiting.pk)
    assert concurrency.keys_with_free_slots() == []
