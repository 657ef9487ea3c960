"""`manage.py runscheduler` hands delayed runs to their backend when due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.models import Run
from runs.redis import queue as run_queue
from tests.redis_workers import drop_keys, unique_prefix
from tests.scheduler_processes import SchedulerProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 1}}


@pytest.fixture
def queue(settings):  # type: ignore[no-untyped-def]
    settings.REDIS_KEY_PREFIX = unique_prefix()
    queue = run_queue.run_queue()
    queue.ensure_group()
    yield queue
    drop_keys(settings.REDIS_KEY_PREFIX)


@pytest.fixture
def scheduler(tmp_path, queue, settings):  # type: ignore[no-untyped-def]
    process = SchedulerProcess(tmp_path, REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX).start()
    yield process
    process.stop()


def queued_ids(queue) -> list[str]:  # type: ignore[no-untyped-def]
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]


def test_a_delayed_run_is_handed_over_at_its_time_and_not_before(scheduler, queue):
    # The scheduler is asleep with nothing due: only the NOTIFY of this create can wake it.
    run_at = timezone.now() + timedelta(seconds=1.5)
    run, _ = services.create_run(mode="redis", spec=SPEC, run_at=run_at)

    wait_for(lambda: queued_ids(queue) == [str(run.id)], timeout=10, what="the run on the queue")

    handed_over = Run.objects.get(pk=run.pk)
    assert handed_over.waiting_for is None and handed_over.status == "pending"
    assert handed_over.updated_at >= run_at


def test_sigterm_stops_the_scheduler_cleanly(scheduler):
    scheduler.terminate()

    assert scheduler.wait(timeout=10) == 0
    assert "scheduler stopped" in scheduler.log()
