"""Every write to schedules, and the firing of their ticks.

`fire_due` is what `manage.py runscheduler` runs: each due schedule is taken
under its row lock (SKIP LOCKED, so racing schedulers share the work and never
wait on each other), its due ticks are handled per `catchup` and `overlap`,
each tick is recorded with a unique (schedule, tick) row in the same
transaction as its run, and `next_fire_at` moves past them. A tick is thus
handled exactly once, whatever the number of schedulers, crashes or restarts.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from audit import services as audit
from orchestrator import copy_rows
from runs import admission, bulk, notify, states
from runs import selectors as run_selectors
from runs import services as run_services
from runs.exceptions import BackendUnavailable, InvalidTransition, SchemaViolation
from runs.models import HELD, Run
from schedules import metrics
from schedules.exceptions import ScheduleNotFound
from schedules.models import Schedule, ScheduleTick
from schedules.timing import Timing, TimingError, check_cron, zone

logger = logging.getLogger("schedules.services")

Clock = Callable[[], datetime]

TIMING_FIELDS = ("cron", "interval_seconds", "timezone", "start_at", "end_at")
TEMPLATE_FIELDS = ("mode", "spec", "metadata", "admission")
EDITABLE_FIELDS = ("name", *TIMING_FIELDS, *TEMPLATE_FIELDS, "overlap", "catchup", "paused")


def _schedule_pk(schedule_id: Any) -> uuid.UUID:
    try:
        return schedule_id if isinstance(schedule_id, uuid.UUID) else uuid.UUID(str(schedule_id))
    except ValueError:
        raise ScheduleNotFound() from None


def get_schedule_or_404(schedule_id: Any, *, for_update: bool = False) -> Schedule:
    queryset = Schedule.objects.select_for_update() if for_update else Schedule.objects
    schedule = queryset.filter(pk=_schedule_pk(schedule_id)).first()
    if schedule is None:
        raise ScheduleNotFound()
    return schedule


def check_schedule(schedule: Schedule) -> None:
    """The rules a schema cannot say; SchemaViolation naming each bad field."""
    fields: dict[str, list[str]] = {}
    if (schedule.cron is None) == (schedule.interval_seconds is None):
        fields["cron"] = ["give exactly one of cron and intervalSeconds"]
    try:
        zone(schedule.timezone)
        if schedule.cron is not None:
            check_cron(schedule.cron, schedule.timezone)
    except TimingError as exc:
        fields.setdefault(exc.field, []).append(exc.message)
    if schedule.start_at and schedule.end_at and schedule.end_at <= schedule.start_at:
        fields["endAt"] = ["must be after startAt"]
    try:
        run_services.validate_spec(schedule.mode, schedule.spec)
    except SchemaViolation as exc:
        fields.update(exc.details["fields"])
    depends_on = (schedule.admission or {}).get("dependsOn") or []
    if depends_on and Run.objects.filter(pk__in=depends_on).count() != len(set(depends_on)):
        fields["dependsOn"] = ["names a run that does not exist"]
    if fields:
        raise SchemaViolation(dict(sorted(fields.items())))


def _without_nulls(admission: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in admission.items() if value is not None}


def _reschedule(schedule: Schedule, now: datetime) -> None:
    """The next tick after `now`: ticks before a change or a resume are not made up."""
    schedule.next_fire_at = None if schedule.paused else schedule.timing.next_after(now)


def _changed() -> None:
    notify.scheduler_changed("schedule")


def create_schedule(*, owner: str = "", now: datetime | None = None, **fields: Any) -> Schedule:
    """Record a schedule (fields named as the model's); its first tick is the
    first after now (or startAt)."""
    now = now or timezone.now()
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown schedule fields: {sorted(unknown)}")
    schedule = Schedule(owner=owner, **fields)
    schedule.metadata = schedule.metadata or {}
    schedule.admission = _without_nulls(schedule.admission or {})
    check_schedule(schedule)
    schedule.anchor_at = schedule.start_at or now
    _reschedule(schedule, now)
    with transaction.atomic():
        schedule.save(force_insert=True)
        audit.record("schedule.create", "schedule", schedule.id, owner=owner, details={"name": schedule.name})
        _changed()
    logger.info("schedule created", extra={"scheduleId": str(schedule.id), "event": "schedule_created"})
    return schedule


def update_schedule(schedule_id: Any, changes: dict[str, Any], *, now: datetime | None = None) -> Schedule:
    """Change some fields. A change of timing (cron, interval, timezone,
    startAt, endAt) or a resume starts again from the first tick after now."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown schedule fields: {sorted(unknown)}")
    now = now or timezone.now()
    with transaction.atomic():
        schedule = get_schedule_or_404(schedule_id, for_update=True)
        before = {name: getattr(schedule, name) for name in EDITABLE_FIELDS}
        for name, value in changes.items():
            if name == "admission":  # a partial change: a null removes the field
                value = _without_nulls({**(schedule.admission or {}), **value})
            setattr(schedule, name, value)
        if "cron" in changes and changes["cron"] is not None and "interval_seconds" not in changes:
            schedule.interval_seconds = None
        if (
            "interval_seconds" in changes
            and changes["interval_seconds"] is not None
            and "cron" not in changes
        ):
            schedule.cron = None
        if "metadata" in changes and schedule.metadata is None:
            schedule.metadata = {}
        check_schedule(schedule)
        timing_changed = any(getattr(schedule, name) != before[name] for name in TIMING_FIELDS)
        if timing_changed:
            schedule.anchor_at = schedule.start_at or now
        withdrawn = any(getattr(schedule, name) != before[name] for name in WITHDRAWING_FIELDS) and (
            _withdraw_prepared(schedule, now)
        )
        if timing_changed or schedule.paused != before["paused"] or withdrawn:
            _reschedule(schedule, now)
        schedule.save()
        audit.record(
            _update_action(changes),
            "schedule",
            schedule.id,
            owner=schedule.owner,
            details={"fields": sorted(changes)},
        )
        _changed()
    return schedule


def _update_action(changes: dict[str, Any]) -> str:
    """The audit action of an update: a pause or a resume alone says so."""
    if set(changes) == {"paused"}:
        return "schedule.pause" if changes["paused"] else "schedule.resume"
    return "schedule.update"


def set_paused(schedule_id: Any, paused: bool, *, now: datetime | None = None) -> Schedule:
    """Pause (no ticks at all while paused) or resume (from the first tick after now)."""
    return update_schedule(schedule_id, {"paused": paused}, now=now)


def delete_schedule(schedule_id: Any, *, now: datetime | None = None) -> None:
    """Delete the schedule and its tick records. The runs it made stay, with
    their scheduleId; those made ahead of ticks still to come are canceled."""
    with transaction.atomic():
        schedule = get_schedule_or_404(schedule_id, for_update=True)
        _withdraw_prepared(schedule, now or timezone.now())
        audit.record("schedule.delete", "schedule", schedule.id, owner=schedule.owner)
        schedule.delete()
        _changed()


def trigger_schedule(schedule_id: Any, *, now: datetime | None = None) -> Run:
    """A run from the schedule's template now, whatever its ticks, pause or overlap."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = get_schedule_or_404(schedule_id, for_update=True)
        audit.record("schedule.trigger", "schedule", schedule.id, owner=schedule.owner)
        run = _create_run(schedule, now)
        schedule.last_run_id = run.id
        schedule.save(update_fields=["last_run_id", "updated_at"])
    return run


def _template(schedule: Schedule, tick: datetime) -> dict[str, Any]:
    """The fields every run of the schedule's tick gets from it."""
    return {
        "mode": schedule.mode,
        "spec": schedule.spec,
        "metadata": schedule.metadata,
        "owner": schedule.owner,
        "schedule_id": schedule.id,
        "scheduled_for": tick,
    }


def _create_run(schedule: Schedule, tick: datetime) -> Run:
    admission = schedule.admission or {}
    run, _ = run_services.create_run(
        **_template(schedule, tick),
        retry=admission.get("retry"),
        depends_on=admission.get("dependsOn"),
        concurrency_limit=admission.get("concurrency"),
        priority=admission.get("priority"),
    )
    return run


def next_due_at() -> datetime | None:
    """The earliest tick some active schedule must handle."""
    return Schedule.objects.filter(paused=False, next_fire_at__isnull=False).aggregate(
        due=Min("next_fire_at")
    )["due"]


# --- Firing ---


@dataclass
class Plan:
    """What to do with a schedule's due ticks, decided before any is handled."""

    skip_from: datetime | None = None  # a range of missed ticks recorded as one skip
    skip_to: datetime | None = None
    skip_reason: str = ""
    caught_up: list[datetime] | None = None
    on_time: datetime | None = None


def plan_ticks(schedule: Schedule, now: datetime) -> Plan:
    """Split the due ticks (next_fire_at .. now) per the schedule's catchup.

    The newest due tick is on time when it is at most SCHEDULE_GRACE_SECONDS
    old; every other due tick was missed (the scheduler was down, or busy).
    """
    timing = schedule.timing
    first = schedule.next_fire_at
    assert first is not None
    newest = timing.latest_at_or_before(now) or first
    newest = max(newest, first)
    plan = Plan()
    if (now - newest).total_seconds() <= settings.SCHEDULE_GRACE_SECONDS:
        plan.on_time = newest
        last_missed = _before(timing, newest, first)
    else:
        last_missed = newest
    if last_missed is None:
        return plan
    catchup = schedule.catchup
    if catchup == Schedule.Catchup.NONE:
        fire: list[datetime] = []
    elif catchup == Schedule.Catchup.LATEST:
        fire = [] if plan.on_time else [last_missed]
    else:
        fire = timing.newest(last_missed, settings.SCHEDULE_MAX_CATCHUP, since=first)
    plan.caught_up = fire
    skip_to = _before(timing, fire[0], first) if fire else last_missed
    if skip_to is not None:
        plan.skip_from, plan.skip_to = first, skip_to
        plan.skip_reason = (
            ScheduleTick.Reason.CATCHUP_LIMIT
            if catchup == Schedule.Catchup.ALL
            else ScheduleTick.Reason.MISSED
        )
    return plan


def _before(timing: Timing, tick: datetime, first: datetime) -> datetime | None:
    """The tick just before `tick`, if it is not before `first`."""
    previous = timing.latest_at_or_before(tick - timedelta(microseconds=1))
    return previous if previous is not None and previous >= first else None


def fire_due(
    now: datetime | None = None,
    *,
    clock: Clock = timezone.now,
    batch_size: int = 100,
    bulk_batch_size: int = 500,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Handle every due tick of every active schedule. Returns how many
    schedules this call handled (others racing it handle the rest).

    `should_stop` is asked between batches, so a scheduler told to stop with
    thousands of ticks due stops within one batch; what it leaves is still due."""
    now = now or clock()
    handled = 0
    failed: set[uuid.UUID] = set()
    # Redis runs under `allow` or `skip` first, a batch in a few statements;
    # then the rest (Kubernetes Jobs, cancel_previous, templates with admission
    # fields, and any batch the fast way could not take), one schedule at a time.
    in_bulk = Q(mode="redis", overlap__in=BULK_OVERLAPS, admission={})
    for selection, at_once in ((in_bulk, True), (~in_bulk, False)):
        while not should_stop():
            with transaction.atomic():
                due = (
                    Schedule.objects.filter(selection, paused=False, next_fire_at__lte=now)
                    .exclude(pk__in=failed)
                    .order_by("next_fire_at", "id")
                )
                due = due.select_for_update(skip_locked=True) if connection.vendor == "postgresql" else due
                batch = list(due[: bulk_batch_size if at_once else batch_size])
                if at_once and batch and _fire_batch_in_bulk(batch, now, clock):
                    handled += len(batch)
                else:
                    handled += _fire_each(batch, now, clock, failed)
            if len(batch) < (bulk_batch_size if at_once else batch_size):
                break
    return handled


def _fire_each(batch: list[Schedule], now: datetime, clock: Clock, failed: set[uuid.UUID]) -> int:
    handled = 0
    for schedule in batch:
        try:
            with transaction.atomic():
                _fire(schedule, now, clock)
            handled += 1
        except Exception:
            # One broken schedule must not stop the others; it is tried again next pass.
            logger.exception("schedule tick failed", extra={"scheduleId": str(schedule.id)})
            failed.add(schedule.id)
    return handled


BULK_OVERLAPS = (Schedule.Overlap.ALLOW, Schedule.Overlap.SKIP)


def _fire_batch_in_bulk(batch: list[Schedule], now: datetime, clock: Clock) -> bool:
    """Every due tick of `batch` (locked) in a few statements: the tick rows,
    the schedules, then the runs with their journal entries. False, with
    nothing written, when that fails (Redis down, a bad template): the
    caller then takes the schedules one by one, which records each failure."""
    try:
        with transaction.atomic():
            _write_batch(batch, now, clock)
    except Exception:
        logger.warning("batch of ticks not fired at once: one by one instead", exc_info=True)
        return False
    return True


def _write_batch(batch: list[Schedule], now: datetime, clock: Clock) -> None:
    last_runs = [schedule.last_run_id for schedule in batch if schedule.last_run_id is not None]
    open_runs = set(
        Run.objects.filter(pk__in=last_runs)
        .exclude(status__in=states.FINAL_STATUSES)
        .values_list("id", flat=True)
    )
    ticks: list[ScheduleTick] = []
    drafts: list[bulk.Draft] = []
    updated: list[Schedule] = []
    fired: list[datetime] = []
    for schedule in batch:
        plan = plan_ticks(schedule, now)
        changed = copy.copy(schedule)  # the locked originals stay as read, should this roll back
        handled_up_to = schedule.next_fire_at
        if plan.skip_from is not None and plan.skip_to is not None:
            ticks.append(_skip(schedule, plan.skip_from, plan.skip_reason, last=plan.skip_to))
            handled_up_to = plan.skip_to
        previous_open = schedule.last_run_id in open_runs
        due = [(tick, ScheduleTick.Outcome.CAUGHT_UP) for tick in plan.caught_up or []]
        if plan.on_time is not None:
            due.append((plan.on_time, ScheduleTick.Outcome.FIRED))
        for tick, outcome in due:
            handled_up_to = tick
            if previous_open and schedule.overlap == Schedule.Overlap.SKIP:
                ticks.append(_skip(schedule, tick, ScheduleTick.Reason.OVERLAP))
                continue
            record, draft = _fired(schedule, tick, outcome)
            ticks.append(record)
            drafts.append(draft)
            changed.last_run_id, changed.last_fired_at, previous_open = record.run_id, tick, True
            if outcome == ScheduleTick.Outcome.FIRED:
                fired.append(tick)
        assert handled_up_to is not None
        changed.next_fire_at = schedule.timing.next_after(handled_up_to)
        changed.updated_at = timezone.now()
        updated.append(changed)
    # The tick rows first: a tick handled elsewhere fails here, before any run exists.
    copy_rows.insert_rows(ticks)
    _save_fired(updated)
    bulk.create_runs(drafts)  # last: it writes the journal
    outcomes = [(str(tick.schedule_id), tick.outcome) for tick in ticks]
    lags = [max(0.0, (clock() - tick).total_seconds()) for tick in fired]

    def observe() -> None:
        for label, outcome in outcomes:
            metrics.TICKS.labels(schedule=label, outcome=outcome).inc()
        for lag in lags:
            metrics.SCHEDULER_LAG_SECONDS.labels(kind="tick").observe(lag)

    transaction.on_commit(observe)


def _fired(
    schedule: Schedule, tick: datetime, outcome: str, *, run_at: datetime | None = None
) -> tuple[ScheduleTick, bulk.Draft]:
    """A tick that makes a run: its record and the run's draft, which share the run's id."""
    run_id = uuid.uuid4()
    record = ScheduleTick(schedule=schedule, tick=tick, last_tick=tick, outcome=outcome, run_id=run_id)
    return record, bulk.Draft(id=run_id, run_at=run_at, **_template(schedule, tick))


# --- Runs made ahead of their tick ---
#
# A tick that 10,000 schedules share cannot have its 10,000 runs written
# (rows, tick records, journal and audit entries) within a second of it on a
# small host. For `overlap: allow` nothing about a tick's run depends on what
# happens before the tick, so its run can be made up to
# SCHEDULE_PREPARE_SECONDS ahead: recorded as a delayed run of the schedule
# (pending, runAt = the tick, waitingFor runAt), with its tick record, in the
# same batched writes as firing; at the tick only the hand-over is left,
# which admission does a batch at a time. Any change that could alter what
# the tick makes (pause, timing, template, overlap, delete) withdraws the
# runs made for ticks still to come: each is canceled and its tick record
# removed, and the schedule fires from the first tick after the change.

PREPARABLE = Q(mode="redis", overlap=Schedule.Overlap.ALLOW, admission={})
# A tick this close is left to `fire_due` at its time: a batch made now might
# commit after it.
PREPARE_MARGIN = timedelta(milliseconds=250)
# What a change must touch to withdraw the runs made ahead (a rename does not).
WITHDRAWING_FIELDS = (*TIMING_FIELDS, *TEMPLATE_FIELDS, "overlap", "paused")


def prepare_due(
    now: datetime | None = None,
    *,
    clock: Clock = timezone.now,
    bulk_batch_size: int = 500,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Make the runs of the ticks due within SCHEDULE_PREPARE_SECONDS of
    `now` (overlap allow, Redis, no admission fields), held until their tick.
    Returns how many ticks this call prepared."""
    ahead = settings.SCHEDULE_PREPARE_SECONDS
    if ahead <= 0:
        return 0
    started = clock()
    now = now or started
    horizon = now + timedelta(seconds=ahead)
    prepared = 0
    while not should_stop():
        with transaction.atomic():
            due = Schedule.objects.filter(
                PREPARABLE,
                paused=False,
                # `now` as time has moved on while earlier batches were made
                next_fire_at__gt=now + (clock() - started) + PREPARE_MARGIN,
                next_fire_at__lte=horizon,
            ).order_by("next_fire_at", "id")
            due = due.select_for_update(skip_locked=True) if connection.vendor == "postgresql" else due
            batch = list(due[:bulk_batch_size])
            try:
                with transaction.atomic():
                    _prepare_batch(batch, now + (clock() - started))
            except Exception:
                # Nothing is lost: these ticks are fired at their time instead.
                logger.warning("ticks not prepared ahead: fired at their time instead", exc_info=True)
                return prepared
        prepared += len(batch)
        if len(batch) < bulk_batch_size:
            break
    return prepared


def _prepare_batch(batch: list[Schedule], now: datetime) -> None:
    if not batch:
        return
    ticks: list[ScheduleTick] = []
    drafts: list[bulk.Draft] = []
    updated: list[Schedule] = []
    for schedule in batch:
        tick = schedule.next_fire_at
        assert tick is not None
        record, draft = _fired(schedule, tick, ScheduleTick.Outcome.FIRED, run_at=tick)
        ticks.append(record)
        drafts.append(draft)
        changed = copy.copy(schedule)
        changed.last_run_id, changed.last_fired_at = record.run_id, tick
        changed.next_fire_at = schedule.timing.next_after(tick)
        changed.updated_at = timezone.now()
        updated.append(changed)
    copy_rows.insert_rows(ticks)
    _save_fired(updated)
    runs = bulk.create_runs(drafts, now=now)
    labels = [str(schedule.id) for schedule in batch]

    def observe() -> None:
        # The tick's lag is observed when its run is handed over (runs.admission).
        for label in labels:
            metrics.TICKS.labels(schedule=label, outcome=ScheduleTick.Outcome.FIRED).inc()

    transaction.on_commit(observe)
    # After the commit, out of the schedules' locks: what is built is only
    # used should the runs exist, and its failure only means building it at the tick.
    transaction.on_commit(lambda: admission.prepare_hand_over(runs), robust=True)


def next_prepare_at(now: datetime) -> datetime | None:
    """When the next tick not yet prepared comes within SCHEDULE_PREPARE_SECONDS."""
    ahead = timedelta(seconds=settings.SCHEDULE_PREPARE_SECONDS)
    if not ahead:
        return None
    due = Schedule.objects.filter(PREPARABLE, paused=False, next_fire_at__gt=now + ahead).aggregate(
        due=Min("next_fire_at")
    )["due"]
    return None if due is None else due - ahead


def _withdraw_prepared(schedule: Schedule, now: datetime) -> bool:
    """Cancel the runs made ahead for this (locked) schedule's ticks still to
    come and forget those ticks; True when there were any. A run already
    handed over, or whose tick has passed, is the tick's and stays."""
    held = list(
        Run.objects.select_for_update()
        .filter(HELD, schedule_id=schedule.id, scheduled_for__gt=now)
        .values_list("id", "scheduled_for")
    )
    if not held:
        return False
    for run_id, _ in held:
        run_services.cancel_run(run_id)
    ScheduleTick.objects.filter(schedule=schedule, tick__in=[tick for _, tick in held]).delete()
    last = ScheduleTick.objects.filter(schedule=schedule, run_id__isnull=False).order_by("-tick").first()
    schedule.last_run_id = last.run_id if last else None
    schedule.last_fired_at = last.tick if last else None
    return True


FIRED_FIELDS = ("next_fire_at", "last_fired_at", "last_run_id", "updated_at")

# One UPDATE for a batch: Django's bulk_update builds a CASE per field and
# row, whose compilation alone took most of a 500-schedule batch's time.
_SAVE_FIRED_SQL = """
UPDATE schedules_schedule AS s
   SET next_fire_at = u.next_fire_at, last_fired_at = u.last_fired_at,
       last_run_id = u.last_run_id, updated_at = u.updated_at
  FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::uuid[], %s::timestamptz[])
       AS u(id, next_fire_at, last_fired_at, last_run_id, updated_at)
 WHERE s.id = u.id
"""


def _save_fired(schedules: list[Schedule]) -> None:
    if connection.vendor != "postgresql":
        for schedule in schedules:
            schedule.save(update_fields=FIRED_FIELDS)
        return
    columns = [[schedule.pk for schedule in schedules]]
    columns += [[getattr(schedule, name) for schedule in schedules] for name in FIRED_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_SAVE_FIRED_SQL, columns)


def _skip(schedule: Schedule, tick: datetime, reason: str, *, last: datetime | None = None) -> ScheduleTick:
    return ScheduleTick(
        schedule=schedule,
        tick=tick,
        last_tick=last or tick,
        outcome=ScheduleTick.Outcome.SKIPPED,
        reason=reason,
    )


def _fire(schedule: Schedule, now: datetime, clock: Clock) -> None:
    plan = plan_ticks(schedule, now)
    handled_up_to = schedule.next_fire_at
    if plan.skip_from is not None and plan.skip_to is not None:
        _record(
            schedule, plan.skip_from, ScheduleTick.Outcome.SKIPPED, reason=plan.skip_reason, last=plan.skip_to
        )
        handled_up_to = plan.skip_to
    for tick in plan.caught_up or []:
        _tick(schedule, tick, ScheduleTick.Outcome.CAUGHT_UP, clock)
        handled_up_to = tick
    if plan.on_time is not None:
        _tick(schedule, plan.on_time, ScheduleTick.Outcome.FIRED, clock)
        handled_up_to = plan.on_time
    assert handled_up_to is not None
    schedule.next_fire_at = schedule.timing.next_after(handled_up_to)
    schedule.save(update_fields=["next_fire_at", "last_fired_at", "last_run_id", "updated_at"])


def _record(
    schedule: Schedule,
    tick: datetime,
    outcome: str,
    *,
    reason: str = "",
    run_id: uuid.UUID | None = None,
    last: datetime | None = None,
) -> ScheduleTick:
    record = ScheduleTick.objects.create(
        schedule=schedule, tick=tick, last_tick=last or tick, outcome=outcome, reason=reason, run_id=run_id
    )
    label = str(schedule.id)
    transaction.on_commit(lambda: metrics.TICKS.labels(schedule=label, outcome=outcome).inc())
    return record


def _previous_run_open(schedule: Schedule) -> Run | None:
    if schedule.last_run_id is None:
        return None
    run = run_selectors.get_run(schedule.last_run_id)
    return run if run is not None and not run.is_final else None


def _tick(schedule: Schedule, tick: datetime, outcome: str, clock: Clock) -> None:
    """One tick: a run (after the overlap rule), or a recorded skip."""
    previous = _previous_run_open(schedule)
    if previous is not None and schedule.overlap == Schedule.Overlap.SKIP:
        _record(schedule, tick, ScheduleTick.Outcome.SKIPPED, reason=ScheduleTick.Reason.OVERLAP)
        return
    try:
        with transaction.atomic():
            # The tick's row first: a tick some other process handled fails
            # here, before any run or backend call exists.
            record = _record(schedule, tick, outcome)
            if previous is not None and schedule.overlap == Schedule.Overlap.CANCEL_PREVIOUS:
                try:
                    run_services.cancel_run(previous.id)
                except InvalidTransition:
                    pass  # it finished meanwhile
            run = _create_run(schedule, tick)
    except BackendUnavailable:
        _record(schedule, tick, ScheduleTick.Outcome.SKIPPED, reason=ScheduleTick.Reason.BACKEND_UNAVAILABLE)
        logger.warning("tick skipped: backend unavailable", extra={"scheduleId": str(schedule.id)})
        return
    except IntegrityError:
        logger.warning(
            "tick already handled", extra={"scheduleId": str(schedule.id), "tick": tick.isoformat()}
        )
        return
    record.run_id = run.id
    record.save(update_fields=["run_id"])
    schedule.last_run_id = run.id
    schedule.last_fired_at = tick
    if outcome == ScheduleTick.Outcome.FIRED:
        lag = max(0.0, (clock() - tick).total_seconds())
        transaction.on_commit(lambda: metrics.SCHEDULER_LAG_SECONDS.labels(kind="tick").observe(lag))
