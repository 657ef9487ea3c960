"""Real `manage.py runscheduler` processes: delayed runs, ticks, two schedulers, faults, metrics."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from runs import services
from runs.models import Run
from schedules import services as services_schedules
from schedules.models import ScheduleTick
from tests.scheduler_processes import SchedulerProcess
from tests.servers import free_port, terminate_connections
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 1}}


@pytest.fixture
def scheduler(tmp_path, queue, settings):
    process = SchedulerProcess(tmp_path, REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX).start()
    yield process
    process.stop()


def queued_ids(queue) -> list[str]:
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]


def test_a_delayed_run_is_handed_over_at_its_time_and_not_before(scheduler, queue):
    # The scheduler is asleep with nothing due: only the NOTIFY of this create can wake it.
    run_at = timezone.now() + timedelta(seconds=1.5)
    run, _ = services.create_run(mode="redis", spec=SPEC, run_at=run_at)

    wait_for(lambda: queued_ids(queue) == [str(run.id)], timeout=30, what="the run on the queue")

    handed_over = Run.objects.get(pk=run.pk)
    assert handed_over.waiting_for is None and handed_over.status == "pending"
    assert handed_over.updated_at >= run_at


def test_sigterm_stops_the_scheduler_cleanly(scheduler):
    scheduler.terminate()

    assert scheduler.wait(timeout=10) == 0
    assert "scheduler stopped" in scheduler.log()


# --- schedules ---


def ticks_are_contiguous(schedule) -> None:
    """Every tick from the first to the last handled has exactly one record."""
    schedule.refresh_from_db()
    timing = schedule.timing
    expected = timing.next_after(schedule.anchor_at)  # the first tick after the schedule was made
    for record in ScheduleTick.objects.filter(schedule=schedule).order_by("tick"):
        assert record.tick == expected, (record.tick, expected)
        expected = timing.next_after(record.last_tick)
    assert expected == schedule.next_fire_at


def test_two_schedulers_make_exactly_one_run_or_skip_per_tick(tmp_path, queue, settings):
    env = {"REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX, "SCHEDULER_MAX_SLEEP_SECONDS": "60"}
    first = SchedulerProcess(tmp_path, **env).start()
    second = SchedulerProcess(tmp_path, **env).start()
    try:
        schedules = [
            services_schedules.create_schedule(
                name=f"s{i}", interval_seconds=1, mode="redis", spec=SPEC, overlap="allow", catchup="all"
            )
            for i in range(20)
        ]
        # Both sleep up to a minute: only the create's NOTIFY wakes them for these ticks.
        wait_for(
            lambda: ScheduleTick.objects.filter(schedule__in=schedules).count() >= 20 * 4,
            timeout=30,
            what="four ticks of each schedule",
        )
    finally:
        assert first.stop() == 0 and second.stop() == 0
    for schedule in schedules:
        ticks_are_contiguous(schedule)
        made = ScheduleTick.objects.filter(schedule=schedule, run_id__isnull=False)
        assert sorted(
            Run.objects.filter(schedule_id=schedule.id).values_list("scheduled_for", flat=True)
        ) == sorted(made.values_list("tick", flat=True))
        assert not ScheduleTick.objects.filter(schedule=schedule, outcome="skipped").exists()


def test_the_scheduler_heals_after_its_database_connections_are_cut(scheduler):
    schedule = services_schedules.create_schedule(
        name="heal", interval_seconds=1, mode="redis", spec=SPEC, overlap="allow", catchup="all"
    )
    wait_for(lambda: ScheduleTick.objects.filter(schedule=schedule).count() >= 2, timeout=15, what="ticks")

    assert terminate_connections(scheduler.db_application_name) >= 1
    handled = ScheduleTick.objects.filter(schedule=schedule).count()

    wait_for(
        lambda: ScheduleTick.objects.filter(schedule=schedule).count() >= handled + 3,
        timeout=20,
        what="more ticks",
    )
    assert "scheduler lost the database" in scheduler.log()
    ticks_are_contiguous(schedule)


def test_the_scheduler_serves_tick_and_lag_metrics(tmp_path, queue, settings):
    port = free_port()
    process = SchedulerProcess(tmp_path, REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX).start(
        "--metrics-port", str(port)
    )
    try:
        schedule = services_schedules.create_schedule(
            name="m", interval_seconds=1, mode="redis", spec=SPEC, overlap="allow"
        )
        wait_for(lambda: ScheduleTick.objects.filter(schedule=schedule).exists(), timeout=15, what="a tick")

        def scraped() -> str:
            # The tick counts when its run is made (ahead of it); its lag, when the run is handed over.
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            lag_observed = 'orchestrator_scheduler_lag_seconds_count{kind="tick"}' in text
            return text if f'schedule="{schedule.id}"' in text and lag_observed else ""

        text = wait_for(scraped, timeout=10, what="the tick and its lag in the metrics")
    finally:
        process.stop()
    assert f'orchestrator_schedule_ticks_total{{outcome="fired",schedule="{schedule.id}"}}' in text
    assert 'orchestrator_scheduler_lag_seconds_count{kind="tick"}' in text
