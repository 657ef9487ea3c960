"""Firing ticks with an injected clock: catch-up, overlap, DST, pause, bounds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from runs import services as run_services
from runs.models import Run
from schedules import services
from schedules.models import Schedule, ScheduleTick
from schedules.wire import schedule_to_wire
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SPEC = {"task": "sleep", "input": {"seconds": 1}}


def every_minute(**fields):
    return services.create_schedule(
        name="every minute", interval_seconds=60, mode="redis", spec=SPEC, now=T0, **fields
    )


def runs_of(schedule: Schedule) -> list[datetime]:
    return list(
        Run.objects.filter(schedule_id=schedule.id)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def records(schedule: Schedule) -> list[tuple[datetime, datetime, str, str]]:
    return [
        (r.tick, r.last_tick, r.outcome, r.reason)
        for r in ScheduleTick.objects.filter(schedule=schedule).order_by("tick")
    ]


def minutes(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in offsets]


def finish(run_id) -> None:
    run_services.set_run_status(run_id, "running")
    run_services.set_run_status(run_id, "completed")


def test_an_interval_schedule_makes_one_run_per_tick(settings):
    schedule = every_minute(overlap="allow")
    assert schedule.next_fire_at == T0 + timedelta(minutes=1)

    assert services.fire_due(T0 + timedelta(seconds=59)) == 0
    assert services.fire_due(T0 + timedelta(minutes=1)) == 1
    assert services.fire_due(T0 + timedelta(minutes=1, seconds=30)) == 0
    assert services.fire_due(T0 + timedelta(minutes=2)) == 1

    assert runs_of(schedule) == minutes(1, 2)
    assert [outcome for _, _, outcome, _ in records(schedule)] == ["fired", "fired"]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=3)
    assert schedule.last_fired_at == T0 + timedelta(minutes=2)
    run = Run.objects.get(pk=schedule.last_run_id)
    assert (run.mode, run.spec, run.scheduled_for) == ("redis", SPEC, T0 + timedelta(minutes=2))


def test_a_scheduler_told_to_stop_leaves_the_rest_due_after_the_batch_in_hand(settings):
    for _ in range(5):
        every_minute(overlap="allow")
    asked = []

    def stop_after_first_batch() -> bool:
        asked.append(True)
        return len(asked) > 1

    handled = services.fire_due(
        T0 + timedelta(minutes=1), batch_size=2, bulk_batch_size=2, should_stop=stop_after_first_batch
    )

    assert handled == 2
    assert Run.objects.count() == 2
    assert Schedule.objects.filter(next_fire_at=T0 + timedelta(minutes=1)).count() == 3
    assert services.fire_due(T0 + timedelta(minutes=1)) == 3


def test_the_wire_form_shows_the_next_five_fire_times():
    schedule = every_minute()

    body = schedule_to_wire(schedule)

    assert_wire("schedule.schema.json#/$defs/schedule", body)
    assert body["nextFireTimes"] == [f"2026-12-01T09:0{m}:00.000000Z" for m in range(1, 6)]


def test_catchup_none_skips_every_missed_tick(settings):
    settings.SCHEDULE_GRACE_SECONDS = 30
    schedule = every_minute(catchup="none")

    services.fire_due(T0 + timedelta(minutes=10, seconds=50))  # down for ten ticks

    assert runs_of(schedule) == []
    assert records(schedule) == [(*minutes(1, 10), "skipped", "missed")]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=11)


def test_catchup_none_still_fires_the_tick_that_is_due_now(settings):
    settings.SCHEDULE_GRACE_SECONDS = 30
    schedule = every_minute(catchup="none")

    services.fire_due(T0 + timedelta(minutes=10, seconds=5))

    assert runs_of(schedule) == minutes(10)
    assert records(schedule)[0] == (*minutes(1, 9), "skipped", "missed")


def test_catchup_latest_makes_one_run_for_the_most_recent_missed_tick(settings):
    settings.SCHEDULE_GRACE_SECONDS = 30
    schedule = every_minute(catchup="latest")

    services.fire_due(T0 + timedelta(minutes=10, seconds=50))

    assert runs_of(schedule) == minutes(10)
    assert records(schedule) == [
        (*minutes(1, 9), "skipped", "missed"),
        (*minutes(10, 10), "caught_up", ""),
    ]


def test_catchup_all_makes_every_missed_tick_up_to_the_limit(settings):
    settings.SCHEDULE_GRACE_SECONDS = 30
    settings.SCHEDULE_MAX_CATCHUP = 4
    schedule = every_minute(catchup="all", overlap="allow")

    services.fire_due(T0 + timedelta(minutes=10, seconds=50))

    assert runs_of(schedule) == minutes(7, 8, 9, 10)
    assert records(schedule)[0] == (*minutes(1, 6), "skipped", "catchup_limit")
    assert [outcome for _, _, outcome, _ in records(schedule)[1:]] == ["caught_up"] * 4


def test_catchup_all_within_the_limit_skips_nothing(settings):
    settings.SCHEDULE_MAX_CATCHUP = 100
    schedule = every_minute(catchup="all", overlap="allow")

    services.fire_due(T0 + timedelta(minutes=3, seconds=1))

    assert runs_of(schedule) == minutes(1, 2, 3)
    assert [outcome for _, _, outcome, _ in records(schedule)] == ["caught_up", "caught_up", "fired"]


def test_overlap_skip_records_a_skip_while_the_previous_run_is_open():
    schedule = every_minute(overlap="skip")

    services.fire_due(T0 + timedelta(minutes=1))
    services.fire_due(T0 + timedelta(minutes=2))
    [first] = Run.objects.filter(schedule_id=schedule.id)
    finish(first.id)
    services.fire_due(T0 + timedelta(minutes=3))

    assert runs_of(schedule) == minutes(1, 3)
    assert records(schedule)[1] == (*minutes(2, 2), "skipped", "overlap")


def test_overlap_cancel_previous_cancels_the_open_run_through_the_service_layer():
    schedule = every_minute(overlap="cancel_previous")

    services.fire_due(T0 + timedelta(minutes=1))
    services.fire_due(T0 + timedelta(minutes=2))

    first, second = Run.objects.filter(schedule_id=schedule.id).order_by("scheduled_for")
    assert first.status == "canceled" and first.finished_at is not None
    assert second.status == "pending"


def test_overlap_allow_always_makes_a_run():
    schedule = every_minute(overlap="allow")

    for minute in (1, 2, 3):
        services.fire_due(T0 + timedelta(minutes=minute))

    assert runs_of(schedule) == minutes(1, 2, 3)
    assert set(Run.objects.filter(schedule_id=schedule.id).values_list("status", flat=True)) == {"pending"}


BERLIN_SPRING = [
    datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 CEST, when the gap ends
    datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
]
BERLIN_AUTUMN = [
    datetime(2026, 10, 24, 0, 30, tzinfo=UTC),  # 02:30 CEST
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 happens twice: only the first (CEST) fires
    datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
]


@pytest.mark.parametrize("expected", [BERLIN_SPRING, BERLIN_AUTUMN], ids=["spring-forward", "fall-back"])
def test_a_0230_berlin_schedule_across_a_dst_change_fires_as_cronsim_documents(expected):
    created = expected[0] - timedelta(hours=12)
    schedule = services.create_schedule(
        name="nightly",
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        mode="redis",
        spec=SPEC,
        overlap="allow",
        now=created,
    )
    assert [tick for tick in schedule.timing.upcoming(schedule.next_fire_at, 3)] == expected

    for tick in expected:
        services.fire_due(tick - timedelta(seconds=1))
        services.fire_due(tick)
        services.fire_due(tick + timedelta(minutes=59))  # the repeated hour: no second run

    assert runs_of(schedule) == expected


def test_a_sub_hourly_schedule_fires_in_both_passes_through_the_repeated_hour():
    schedule = services.create_schedule(
        name="half-hourly",
        cron="*/30 * * * *",
        timezone="Europe/Berlin",
        mode="redis",
        spec=SPEC,
        now=datetime(2026, 10, 24, 23, 45, tzinfo=UTC),
    )

    ticks = schedule.timing.upcoming(schedule.next_fire_at, 4)

    # 02:00 and 02:30 CEST, then 02:00 and 02:30 CET: four UTC half-hours in a row.
    assert ticks == [datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(4)]


def test_a_paused_schedule_makes_nothing_and_resumes_from_the_next_tick(settings):
    schedule = every_minute()
    services.set_paused(schedule.id, True, now=T0)

    services.fire_due(T0 + timedelta(minutes=5))
    assert runs_of(schedule) == [] and records(schedule) == []
    assert schedule_to_wire(Schedule.objects.get(pk=schedule.pk))["nextFireTimes"] == []

    resumed = services.set_paused(schedule.id, False, now=T0 + timedelta(minutes=5, seconds=10))
    assert resumed.next_fire_at == T0 + timedelta(minutes=6)
    services.fire_due(T0 + timedelta(minutes=6))
    assert runs_of(schedule) == minutes(6)
    assert len(records(schedule)) == 1  # the paused minutes were never ticks to record


def test_start_at_and_end_at_bound_the_ticks():
    schedule = every_minute(
        start_at=T0 + timedelta(minutes=30), end_at=T0 + timedelta(minutes=32), overlap="allow"
    )
    assert schedule.next_fire_at == T0 + timedelta(minutes=30)

    for minute in range(30, 36):
        services.fire_due(T0 + timedelta(minutes=minute))

    assert runs_of(schedule) == minutes(30, 31, 32)
    schedule.refresh_from_db()
    assert schedule.next_fire_at is None


def test_trigger_makes_a_run_now_even_while_paused():
    schedule = every_minute(paused=True)

    run = services.trigger_schedule(schedule.id, now=T0 + timedelta(seconds=7))

    assert run.schedule_id == schedule.id and run.scheduled_for == T0 + timedelta(seconds=7)
    assert Schedule.objects.get(pk=schedule.pk).last_run_id == run.id


def test_changing_the_timing_starts_again_after_now():
    schedule = every_minute()

    changed = services.update_schedule(schedule.id, {"cron": "0 12 * * *"}, now=T0 + timedelta(minutes=5))

    assert changed.interval_seconds is None
    assert changed.next_fire_at == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def race(work: Callable[[], None], processes: int = 4) -> None:
    """`work` in that many threads at once, each with its own connection, as racing schedulers."""
    start = threading.Barrier(processes)

    def run() -> None:
        try:
            start.wait()
            work()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_racing_schedulers_make_exactly_one_run_per_tick():
    # catchup all: whichever pass handles a tick, every tick gets its run.
    schedules = [every_minute(overlap="allow", catchup="all") for _ in range(30)]

    def fire() -> None:
        for minute in (1, 2, 3):
            services.fire_due(T0 + timedelta(minutes=minute), batch_size=4, bulk_batch_size=4)

    race(fire)

    for schedule in schedules:
        assert runs_of(schedule) == minutes(1, 2, 3)


def test_ticks_that_fall_together_each_get_a_journal_entry_and_one_queue_entry(
    queue, django_capture_on_commit_callbacks
):
    from journal.models import Entry

    schedules = [every_minute(overlap="allow") for _ in range(7)]

    with django_capture_on_commit_callbacks(execute=True):  # the queue entries go after the commit
        assert services.fire_due(T0 + timedelta(minutes=1), bulk_batch_size=3) == 7

    runs = {run.id: run for run in Run.objects.filter(schedule_id__in=[s.id for s in schedules])}
    assert len(runs) == 7
    entries = list(Entry.objects.order_by("id"))
    assert [entry.type for entry in entries] == ["run.created"] * 7
    assert {entry.run_id for entry in entries} == set(runs)
    assert [entry.id for entry in entries] == list(range(entries[0].id, entries[0].id + 7))  # no gaps
    for entry in entries:
        assert entry.run["scheduleId"] == str(runs[entry.run_id].schedule_id)
        assert entry.run["scheduledFor"] == "2026-12-01T09:01:00.000000Z"
    queued = [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]
    assert sorted(queued) == sorted(str(run_id) for run_id in runs)


def test_with_redis_down_the_ticks_that_fell_together_are_recorded_skipped(settings):
    from tests.servers import free_port

    schedules = [every_minute(overlap="allow") for _ in range(3)]
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.REDIS_DISPATCH_BACKOFF_SECONDS = 0  # later creates ask Redis again

    assert services.fire_due(T0 + timedelta(minutes=1)) == 3

    assert not Run.objects.exists()
    for schedule in schedules:
        assert records(schedule) == [(*minutes(1, 1), "skipped", "backend_unavailable")]
        schedule.refresh_from_db()
        assert schedule.next_fire_at == T0 + timedelta(minutes=2)


# --- Runs made ahead of their tick (overlap allow) ---

TICK = T0 + timedelta(minutes=1)


def prepare(at: datetime) -> int:
    return services.prepare_due(at, clock=lambda: at)


def test_the_run_of_an_allow_tick_is_made_ahead_held_by_its_runat_and_handed_over_at_the_tick(
    settings, queue, django_capture_on_commit_callbacks
):
    from journal.models import Entry
    from runs import admission
    from schedules.wire import next_fire_times

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedules = [every_minute(overlap="allow") for _ in range(3)]
    assert prepare(TICK - timedelta(seconds=6)) == 0  # not yet within the window

    with django_capture_on_commit_callbacks(execute=True):
        assert prepare(TICK - timedelta(seconds=4)) == 3
    runs = list(Run.objects.filter(schedule_id__in=[s.id for s in schedules]))
    assert [(run.status, run.run_at, run.scheduled_for, run.not_before) for run in runs] == [
        ("pending", TICK, TICK, TICK)
    ] * 3
    assert all(run.waiting_for == {"reason": "runAt", "until": "2026-12-01T09:01:00.000000Z"} for run in runs)
    assert queue.redis.xlen(queue.keys.stream) == 0
    assert [entry.type for entry in Entry.objects.all()] == ["run.created"] * 3
    for schedule in schedules:
        schedule.refresh_from_db()
        assert records(schedule) == [(TICK, TICK, "fired", "")]
        assert schedule.next_fire_at == TICK + timedelta(minutes=1)
        assert next_fire_times(schedule, 2, now=TICK - timedelta(seconds=4)) == [
            "2026-12-01T09:01:00.000000Z",
            "2026-12-01T09:02:00.000000Z",
        ]
    assert services.fire_due(TICK) == 0  # nothing left to fire at the tick

    assert admission.admit_due(TICK - timedelta(milliseconds=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert admission.admit_due(TICK) == 3
    assert set(Run.objects.values_list("status", "waiting_for", "not_before")) == {("pending", None, None)}
    queued = sorted(fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream))
    assert queued == sorted(str(run.id) for run in runs)


def test_only_allow_schedules_without_admission_fields_are_made_ahead(settings):
    settings.SCHEDULE_PREPARE_SECONDS = 5
    every_minute(overlap="skip")
    every_minute(overlap="cancel_previous")
    every_minute(overlap="allow", admission={"retry": {"maxAttempts": 2}})

    assert prepare(TICK - timedelta(seconds=4)) == 0
    assert not Run.objects.exists()


def test_a_pause_before_the_tick_withdraws_the_run_made_ahead_and_a_resume_fires_the_tick(settings):
    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedule = every_minute(overlap="allow")
    prepare(TICK - timedelta(seconds=4))
    made = Run.objects.get(schedule_id=schedule.id)

    paused = services.set_paused(schedule.id, True, now=TICK - timedelta(seconds=2))

    made.refresh_from_db()
    assert made.status == "canceled"
    assert records(schedule) == []
    assert (paused.next_fire_at, paused.last_run_id, paused.last_fired_at) == (None, None, None)

    resumed = services.set_paused(schedule.id, False, now=TICK - timedelta(seconds=1))
    assert resumed.next_fire_at == TICK
    assert services.fire_due(TICK) == 1
    live = Run.objects.filter(schedule_id=schedule.id).exclude(status="canceled")
    assert [(run.scheduled_for, run.waiting_for) for run in live] == [(TICK, None)]
    assert records(schedule) == [(TICK, TICK, "fired", "")]


def test_a_template_change_before_the_tick_fires_it_with_the_new_template_and_a_rename_changes_nothing(
    settings,
):
    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedule = every_minute(overlap="allow")
    prepare(TICK - timedelta(seconds=4))
    made = Run.objects.get(schedule_id=schedule.id)

    services.update_schedule(schedule.id, {"name": "renamed"}, now=TICK - timedelta(seconds=3))
    assert Run.objects.get(pk=made.pk).status == "pending"

    new_spec = {"task": "sleep", "input": {"seconds": 2}}
    changed = services.update_schedule(schedule.id, {"spec": new_spec}, now=TICK - timedelta(seconds=2))

    assert Run.objects.get(pk=made.pk).status == "canceled"
    assert changed.next_fire_at == TICK
    assert services.fire_due(TICK) == 1
    fired = Run.objects.get(schedule_id=schedule.id, status="pending")
    assert (fired.scheduled_for, fired.spec) == (TICK, new_spec)


def test_deleting_a_schedule_cancels_the_run_made_ahead_of_its_tick(settings):
    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedule = every_minute(overlap="allow")
    prepare(TICK - timedelta(seconds=4))

    services.delete_schedule(schedule.id, now=TICK - timedelta(seconds=2))

    assert list(Run.objects.filter(schedule_id=schedule.id).values_list("status", flat=True)) == ["canceled"]


def test_a_pause_after_the_tick_leaves_the_tick_its_run_even_before_the_hand_over(settings):
    from runs import admission

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedule = every_minute(overlap="allow")
    prepare(TICK - timedelta(seconds=4))

    services.set_paused(schedule.id, True, now=TICK + timedelta(milliseconds=100))

    assert admission.admit_due(TICK + timedelta(milliseconds=200)) == 1
    run = Run.objects.get(schedule_id=schedule.id)
    assert (run.status, run.waiting_for, run.scheduled_for) == ("pending", None, TICK)
    assert records(schedule) == [(TICK, TICK, "fired", "")]


@pytest.mark.django_db(transaction=True)
def test_racing_schedulers_making_ticks_ahead_and_handing_them_over_make_one_run_per_tick(settings):
    from runs import admission

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedules = [every_minute(overlap="allow") for _ in range(30)]

    def prepare_fire_and_admit() -> None:
        for minute in (1, 2, 3):
            tick = T0 + timedelta(minutes=minute)
            ahead = tick - timedelta(seconds=4)
            services.prepare_due(ahead, clock=lambda at=ahead: at, bulk_batch_size=4)
            services.fire_due(tick, bulk_batch_size=4)
            admission.admit_due(tick)

    race(prepare_fire_and_admit)

    for schedule in schedules:
        assert runs_of(schedule) == minutes(1, 2, 3)
        assert [outcome for _, _, outcome, _ in records(schedule)] == ["fired"] * 3
    assert not Run.objects.filter(waiting_for__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_runs_made_ahead_are_handed_over_by_racing_threads_once_each(settings, queue):
    from runs import admission

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedules = [every_minute(overlap="allow") for _ in range(20)]
    prepare(TICK - timedelta(seconds=4))

    # Several batches due: each scheduler hands them over with helper threads too.
    counts: list[int] = []
    race(lambda: counts.append(admission.admit_due(TICK, bulk_batch_size=3)), processes=2)

    assert sum(counts) == 20
    queued = [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream)]
    made = Run.objects.filter(schedule_id__in=[s.id for s in schedules], waiting_for__isnull=True)
    assert sorted(queued) == sorted(str(run_id) for run_id in made.values_list("id", flat=True))
    assert len(queued) == 20


def test_a_single_scheduler_pass_makes_nothing_ahead_and_a_running_scheduler_does(settings):
    from schedules.scheduler import Scheduler

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedule = every_minute(overlap="allow")
    scheduler = Scheduler(clock=lambda: TICK - timedelta(seconds=4))

    assert scheduler.run_pass(ahead=False) == TICK  # --once: no pass may follow to hand it over
    assert runs_of(schedule) == []

    assert scheduler.run_pass() == TICK  # made ahead; its hand-over is what is due next
    assert runs_of(schedule) == [TICK]


def hand_over_reading(at: datetime, callbacks) -> list[str]:
    """admit_due(at), its commit hooks run; the statements it issued."""
    from django.test.utils import CaptureQueriesContext

    from runs import admission

    with CaptureQueriesContext(connection) as statements, callbacks(execute=True):
        assert admission.admit_due(at) == 3
    return [statement["sql"] for statement in statements.captured_queries]


def entries_of(queue, runs: list[Run]) -> list[dict[str, str]]:
    entries = {fields["runId"]: fields for _, fields in queue.redis.xrange(queue.keys.stream)}
    assert sorted(entries) == sorted(str(run.id) for run in runs)
    return [entries[str(run.id)] for run in runs]


def reads_runs_again(statements: list[str]) -> bool:
    """Whether the hand-over read runs it handed over, by id, to build their queue entries."""
    return any(
        sql.startswith("SELECT") and '"runs_run"."spec"' in sql and '"runs_run"."id" IN' in sql
        for sql in statements
    )


def test_a_tick_made_ahead_is_handed_over_with_the_queue_entries_built_ahead(
    settings, queue, django_capture_on_commit_callbacks
):
    from runs import tokens
    from runs.wire import format_ts

    settings.SCHEDULE_PREPARE_SECONDS = 5
    tick = (timezone.now() + timedelta(minutes=2)).replace(microsecond=0)
    schedules = [
        services.create_schedule(
            name="soon",
            interval_seconds=60,
            mode="redis",
            spec=SPEC,
            overlap="allow",
            now=tick - timedelta(minutes=1),
        )
        for _ in range(3)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert prepare(tick - timedelta(seconds=4)) == 3

    statements = hand_over_reading(tick, django_capture_on_commit_callbacks)

    assert not reads_runs_again(statements)
    runs = list(Run.objects.filter(schedule_id__in=[s.id for s in schedules]))
    for run, fields in zip(runs, entries_of(queue, runs), strict=True):
        assert fields["spec"] == '{"input":{"seconds":1},"task":"sleep"}' and fields["task"] == "sleep"
        assert fields["createdAt"] == format_ts(run.created_at) and fields["priority"] == "5"
        token = tokens.read(fields["token"])
        assert (token.kind, token.run_id) == (tokens.WORKER, str(run.id))
        # Minted ahead, it expires when one minted at the tick would.
        assert token.expires_at >= tick + timedelta(seconds=settings.WORKER_TOKEN_TTL_SECONDS - 1)


def test_a_run_made_ahead_but_handed_over_long_after_its_tick_gets_an_entry_built_then(
    settings, queue, django_capture_on_commit_callbacks
):
    from runs import tokens

    settings.SCHEDULE_PREPARE_SECONDS = 5
    schedules = [every_minute(overlap="allow") for _ in range(3)]  # TICK is long past
    with django_capture_on_commit_callbacks(execute=True):
        assert prepare(TICK - timedelta(seconds=4)) == 3
    handed_over = timezone.now()

    statements = hand_over_reading(TICK, django_capture_on_commit_callbacks)

    assert reads_runs_again(statements)
    runs = list(Run.objects.filter(schedule_id__in=[s.id for s in schedules]))
    for run, fields in zip(runs, entries_of(queue, runs), strict=True):
        token = tokens.read(fields["token"])
        assert token.run_id == str(run.id)
        assert token.expires_at >= handed_over + timedelta(seconds=settings.WORKER_TOKEN_TTL_SECONDS - 1)
