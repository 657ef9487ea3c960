"""The consumer's whole ask at once: "3 attempts with backoff, at most 2 at
once per customer, after these two runs", with real workers and a real
scheduler, and the reason of each wait visible on the run."""

from __future__ import annotations

import pytest

from journal import selectors as journal
from runs import services
from runs.models import Run
from tests.redis_workers import WorkerProcess
from tests.scheduler_processes import SchedulerProcess
from tests.test_concurrency_keys import ActiveSampler
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_retries_a_concurrency_key_and_dependencies_together(queue, tmp_path, settings) -> None:
    prefix = settings.REDIS_KEY_PREFIX
    first, _ = services.create_run(mode="redis", spec={"task": "probe", "input": {"seconds": 0.5}})
    second, _ = services.create_run(mode="redis", spec={"task": "probe", "input": {"seconds": 0.5}})
    asked = [
        services.create_run(
            mode="redis",
            spec={"task": "flaky", "input": {"succeedOn": 2}},
            retry={"maxAttempts": 3, "backoffSeconds": 0.2},
            concurrency_limit={"key": "customer-7", "limit": 2},
            depends_on=[first.pk, second.pk],
        )[0]
        for _ in range(5)
    ]
    assert {run.waiting_for["reason"] for run in asked} == {"dependencies"}

    workers = [WorkerProcess(tmp_path, prefix, concurrency=4).start() for _ in range(2)]
    scheduler = SchedulerProcess(tmp_path, REDIS_KEY_PREFIX=prefix).start()
    try:
        with ActiveSampler("customer-7") as sampler:
            wait_for(
                lambda: all(run.is_final for run in Run.objects.filter(pk__in=[r.pk for r in asked])),
                timeout=60,
                what="every asked run to end",
            )
    finally:
        scheduler.stop()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.stop()

    done = list(Run.objects.filter(pk__in=[r.pk for r in asked]))
    assert [run.status for run in done] == ["completed"] * 5
    assert all(run.attempt == 2 and run.waiting_for is None for run in done)
    assert sampler.most <= 2
    before = max(Run.objects.get(pk=first.pk).finished_at, Run.objects.get(pk=second.pk).finished_at)
    assert all(run.started_at >= before for run in done)
    for run in done:
        types = [entry.type for entry in journal.entries_of_run(run.pk)]
        assert types == ["run.created", "run.running", "run.retrying", "run.running", "run.completed"]
