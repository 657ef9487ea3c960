"""Admission: when a pending run may be handed to its backend.

A run created with a gate closed is recorded `pending` with `waiting_for`
saying why (`{"reason": "runAt", "until": …}`) and is not dispatched. A time
gate also sets `not_before`, the instant it opens. `admit_due` hands over the
runs whose time gate has passed; the scheduler process (`manage.py
runscheduler`) calls it when `next_due_at` comes, and whenever a delayed run
is created (a NOTIFY wakes it). Any number of processes may call it at once:
each due run is taken by exactly one of them (row locks, SKIP LOCKED).

Leaving `pending` (a cancel) clears the gate fields, so a final run never
shows a reason to wait.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from runs import concurrency, dependencies, metrics, notify
from runs.backends import get_backend
from runs.exceptions import BackendUnavailable, InvalidTransition, SchemaViolation
from runs.models import HELD, Run
from runs.wire import format_ts

logger = logging.getLogger("runs.admission")

RUN_AT = "runAt"
DISPATCH_REJECTED = "dispatch_rejected"

GATE_FIELDS = ("not_before", "waiting_for")


def hold_until(run: Run, run_at: datetime | None, *, now: datetime | None = None) -> bool:
    """Gate an unsaved run on `run_at`. A `run_at` that is not in the future
    sets no gate: the run is dispatched at once. True when the run is held."""
    run.run_at = run_at
    if run_at is None or run_at <= (now or timezone.now()):
        return False
    run.not_before = run_at
    run.waiting_for = {"reason": RUN_AT, "until": format_ts(run_at)}
    return True


def dispatch_at(run: Run, *, now: datetime | None = None) -> datetime:
    """When the run would be handed to its backend (plan mode)."""
    return run.not_before if run.not_before is not None else (now or timezone.now())


def clear_gates(run: Run) -> list[str]:
    """Open every gate of a run leaving `pending`; the fields to save."""
    run.not_before = None
    run.waiting_for = None
    return list(GATE_FIELDS)


def wake_scheduler() -> None:
    """Tell the scheduler processes a delayed run changed; call inside the write's transaction."""
    notify.scheduler_changed("run")


def next_due_at() -> datetime | None:
    """The earliest instant a held run's time gate opens."""
    return Run.objects.filter(HELD, not_before__isnull=False).aggregate(due=Min("not_before"))["due"]


def admit_due(now: datetime | None = None, *, batch_size: int = 200, bulk_batch_size: int = 1000) -> int:
    """Hand every held run whose time gate has passed to its backend.
    Returns how many were handed over by this call."""
    now = now or timezone.now()
    admitted = _admit_in_bulk(now, batch_size=bulk_batch_size)
    while True:
        with transaction.atomic():
            batch = _lock_due(Q(HELD, not_before__lte=now), batch_size)
            for run in batch:
                admitted += _admit(run, now)
        if len(batch) < batch_size:
            return admitted


# Runs whose one gate is their runAt, in a mode whose backend hands them over
# after the commit (so a batch is all or nothing): a batch at a time, in one
# UPDATE. A schedule makes the runs of ticks that fall together ahead of time,
# held by their runAt, and thousands of them come due at the same instant.
BULK_MODES = ("redis",)
BULK_HELD = Q(
    HELD,
    waiting_for__reason=RUN_AT,
    mode__in=BULK_MODES,
    depends_on__isnull=True,
    concurrency_key__isnull=True,
)


class Opened(NamedTuple):
    """A run whose time gate a bulk hand-over cleared: what the hand-over
    reads of it. The backend finds the rest (Backend.dispatch_opened),
    usually built ahead of the gate (Backend.prepare_dispatch); building
    Run instances, and their queue entries, for thousands of runs due at
    once was most of the hand-over's Python time. Instants in epoch seconds."""

    id: str
    mode: str
    opened_at: float
    run_at: float | None
    of_schedule: bool


# Threads handing over at once when more than a batch is due: while one
# waits for PostgreSQL (its UPDATE, its commit), another builds its queue
# entries, so the database's work and the process's overlap. Three gave 0.83
# and 0.88 of two's p99 for 10,000 runs due at once (docs/performance.md).
HAND_OVER_THREADS = 3


def _admit_in_bulk(now: datetime, *, batch_size: int = 1000) -> int:
    """Hand over the due runs that only wait for their runAt, a batch per
    transaction (on PostgreSQL). Whatever a batch cannot do (Redis down) is
    left to the run by run way, which records each failure."""
    if connection.vendor != "postgresql":
        return 0
    admitted, more = _admit_batches(now, batch_size, first_only=True)
    # Inside a caller's transaction another connection would not see its runs.
    if not more or connection.in_atomic_block:
        return admitted + (_admit_batches(now, batch_size)[0] if more else 0)
    counts: list[int] = []

    def helper() -> None:
        try:
            counts.append(_admit_batches(now, batch_size)[0])
        finally:
            connection.close()  # this thread's connection, back to the pool

    threads = [threading.Thread(target=helper, name="hand-over") for _ in range(HAND_OVER_THREADS - 1)]
    for thread in threads:
        thread.start()
    admitted += _admit_batches(now, batch_size)[0]
    for thread in threads:
        thread.join()
    return admitted + sum(counts)


def _admit_batches(now: datetime, batch_size: int, *, first_only: bool = False) -> tuple[int, bool]:
    """Batches until none is full (or one, `first_only`): how many were
    handed over, and whether more may be due."""
    admitted = 0
    while True:
        try:
            with transaction.atomic():
                batch = _open_time_gates(now, batch_size)
                if batch:
                    _hand_over_batch(batch)
        except BackendUnavailable:
            return admitted, False
        admitted += len(batch)
        if len(batch) < batch_size:
            return admitted, False
        if first_only:
            return admitted, True


def _lock_due(due: Q, limit: int) -> list[Run]:
    """Up to `limit` due runs, oldest gate first, locked; on PostgreSQL the
    ones another process holds are skipped, so racing schedulers share them."""
    runs = Run.objects.filter(due).order_by("not_before", "id")
    runs = runs.select_for_update(skip_locked=connection.vendor == "postgresql")
    return list(runs[:limit])


def _open_time_gates(now: datetime, limit: int) -> list[Opened]:
    """Clear the gates of up to `limit` due BULK_HELD runs (locked, others'
    skipped) in one statement; what the hand-over reads of them."""
    due = (
        Run.objects.filter(BULK_HELD, not_before__lte=now)
        .order_by("not_before")  # the pending runs' not_before index, read in its order
        .values("id", "not_before")
        .select_for_update(skip_locked=True)[:limit]
    )
    select, params = due.query.get_compiler(connection=connection).as_sql()
    # Text and epoch seconds: the driver's UUID and timestamp loaders, run
    # for every row, cost more than the rest of the row together.
    update = (
        f"UPDATE {Run._meta.db_table} AS r SET not_before = NULL, waiting_for = NULL, updated_at = %s"  # noqa: S608
        f" FROM ({select}) AS due WHERE r.id = due.id"
        " RETURNING r.id::text, r.mode, extract(epoch FROM due.not_before)::float8,"
        " extract(epoch FROM r.run_at)::float8, r.schedule_id IS NOT NULL"
    )  # names from the model and the compiled query; every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(update, [timezone.now(), *params])
        return [Opened._make(row) for row in cursor.fetchall()]


def _hand_over_batch(runs: list[Opened]) -> None:
    by_mode: dict[str, list[str]] = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run.id)
    for mode, of_mode in by_mode.items():
        get_backend(mode).dispatch_opened(of_mode)
    notify.runs_changed([run.id for run in runs])

    def observe() -> None:
        handed_over = time.time()
        metrics.RUNS_ADMITTED.labels(reason=RUN_AT).inc(len(runs))
        latency = metrics.ADMISSION_LATENCY_SECONDS.labels(reason=RUN_AT)
        for run in runs:
            latency.observe(max(0.0, handed_over - run.opened_at))
            if run.run_at is not None:
                lag = max(0.0, handed_over - run.run_at)
                metrics.SCHEDULER_LAG_SECONDS.labels(kind=_lag_kind(run.of_schedule)).observe(lag)

    transaction.on_commit(observe)
    logger.info("runs admitted", extra={"runs": len(runs), "event": "runs_admitted"})


def prepare_hand_over(runs: list[Run]) -> None:
    """These runs, just made and held by their runAt, are handed over in
    bulk when it comes: let their backends build now what they can of it."""
    by_mode: dict[str, list[Run]] = {}
    for run in runs:
        if run.is_held:
            by_mode.setdefault(run.mode, []).append(run)
    for mode, of_mode in by_mode.items():
        get_backend(mode).prepare_dispatch(of_mode)


def _lag_kind(of_schedule: bool) -> str:
    """A schedule's run made ahead of its tick is that tick's lag; any other, a delayed run's."""
    return "tick" if of_schedule else RUN_AT


def next_gate(run: Run) -> dict[str, Any] | None:
    """The `waitingFor` of the first gate still closed once a run's time
    gate has opened (its dependencies, then its concurrency key's slot), or
    None: it may be handed over (and then holds the slot)."""
    return dependencies.gate_for(dependencies.remaining(run)) or concurrency.gate(run)


def admit_locked(run: Run, now: datetime | None = None) -> int:
    """A gate of this locked, held run opened: hand it over, unless another
    gate is still closed (its `waitingFor` then says which). 1 when handed over."""
    return _admit(run, now or timezone.now())


def hand_over(run: Run, now: datetime) -> int:
    """Dispatch a locked run waiting for its key's slot, which the caller
    has just taken for it under the key's lock (runs.concurrency): its other
    gates opened before it waited for the slot. 1 when handed over."""
    return _admit(run, now, check_gates=False)


def admit_waiting(key: str, now: datetime | None = None) -> int:
    """Hand over, oldest first, the runs waiting for a slot of `key`, as
    many as are free, in a transaction of its own. How many went."""
    now = now or timezone.now()
    with transaction.atomic():
        return _hand_over_waiting(concurrency.lock_waiting(key), now)


def hand_over_freed(run: Run, now: datetime) -> None:
    """`run` gave its key's slot up in this transaction, which has written
    its journal entry: hand the slot to the next in line.

    A finish never waits for its key's row: one that did would hold the key
    through its journal entry and commit, and every other finish of the key
    would queue behind it. So here, at the very end of the transaction, the
    row and the waiting runs are only tried (SKIP LOCKED), which nothing
    waits on while the journal's clock is held, and they are held for no
    longer than the commit; this when the backend sends after the commit
    (Redis), so that nothing slow happens under the clock. Otherwise (the
    row is taken, a Kubernetes run) the handover happens right after the
    commit, in a transaction of its own that may wait for the row. Should
    the process die before that, the scheduler's pass (admit_free_slots)
    finds the key."""
    key = run.concurrency_key
    if not key:
        return
    backend = get_backend(run.mode)
    if connection.vendor == "postgresql" and backend.sends_after_commit:
        # One round trip under the clock (trying the row, then picking and
        # handing over, in one call): the rest (their queue entries, the
        # metrics) waits for the commit, out of the clock.
        outcome = concurrency.hand_over_waiting(key, run.mode, now)
        if outcome is not None:
            picked, handed = outcome
            if handed:
                transaction.on_commit(lambda: _sent_after_handover(backend, handed, now), robust=True)
            if picked == len(handed):
                return  # else runs of another backend were next: theirs after the commit
    transaction.on_commit(lambda: admit_waiting(key), robust=True)


def _sent_after_handover(backend: Any, runs: list[Run], now: datetime) -> None:
    backend.send_handed_over(runs)
    done = timezone.now()
    for _ in runs:
        metrics.RUNS_ADMITTED.labels(reason=concurrency.CONCURRENCY).inc()
        metrics.ADMISSION_LATENCY_SECONDS.labels(reason=concurrency.CONCURRENCY).observe(
            max(0.0, (done - now).total_seconds())
        )


def _hand_over_waiting(waiting: list[Run], now: datetime) -> int:
    if waiting and _hand_over_together(waiting, now):
        return len(waiting)
    return sum(hand_over(waiter, now) for waiter in waiting)


# Clear the gates of the runs handed over and wake their followers, in one
# statement (the runs are locked, and their gates checked, by the caller).
_HAND_OVER_SQL = """
WITH handed AS (
    UPDATE runs_run SET waiting_for = NULL, not_before = NULL, updated_at = %(now)s
     WHERE id = ANY(%(ids)s) RETURNING id
)
SELECT pg_notify(%(channel)s, id::text) FROM handed
"""


def _hand_over_together(runs: list[Run], now: datetime) -> bool:
    """hand_over() for many locked runs whose backend sends after the commit
    (Redis), in one statement instead of a savepoint and two per run: the
    handover of a key's next run is on the path of every finish of the key.
    False when this does not apply (another backend, or not PostgreSQL):
    then they are handed over one by one."""
    modes = {run.mode for run in runs}
    if len(modes) != 1 or connection.vendor != "postgresql":
        return False
    backend = get_backend(modes.pop())
    if not backend.sends_after_commit:
        return False
    waited = [(run.waiting_for or {}).get("reason", "") for run in runs]
    opened = [min(run.not_before, now) if run.not_before is not None else now for run in runs]
    for run in runs:
        clear_gates(run)
        run.updated_at = now
    transaction.on_commit(lambda: backend.send_handed_over(runs), robust=True)
    with connection.cursor() as cursor:
        params = {"now": now, "ids": [run.pk for run in runs], "channel": notify.CHANNEL}
        cursor.execute(_HAND_OVER_SQL, params)
    done = timezone.now()
    for reason, since in zip(waited, opened, strict=True):
        metrics.RUNS_ADMITTED.labels(reason=reason).inc()
        latency = max(0.0, (done - since).total_seconds())
        metrics.ADMISSION_LATENCY_SECONDS.labels(reason=reason).observe(latency)
    return True


def admit_free_slots(now: datetime | None = None) -> int:
    """The scheduler's safety net: the keys with runs waiting and a slot
    free (a process died between a finish's commit and its handover)."""
    return sum(admit_waiting(key, now) for key in concurrency.keys_with_free_slots())


def _admit(run: Run, now: datetime, *, check_gates: bool = True) -> int:
    """Dispatch one locked run whose gate opened. 1 when it was handed over."""
    waiting_for: Any = run.waiting_for
    # When the gate opened: a time gate's instant, else the change that opened it.
    opened_at = min(run.not_before, now) if run.not_before is not None else now
    gate = next_gate(run) if check_gates else None
    if gate is not None:
        run.not_before = None
        run.waiting_for = gate
        run.save(update_fields=[*GATE_FIELDS, "updated_at"])
        notify.run_changed(str(run.id))
        return 0
    try:
        with transaction.atomic():
            run.save(update_fields=[*clear_gates(run), "updated_at"])
            get_backend(run.mode).dispatch(run)
            notify.run_changed(str(run.id))
    except BackendUnavailable as exc:
        # Kubernetes is down: the run keeps waiting and is tried again shortly.
        run.waiting_for = waiting_for
        run.not_before = now + timedelta(seconds=settings.ADMISSION_RETRY_SECONDS)
        run.save(update_fields=[*GATE_FIELDS, "updated_at"])
        logger.warning(
            "due run not admitted: backend unavailable",
            extra={"runId": str(run.id), "event": "admission_deferred", "reason": exc.message},
        )
        return 0
    except SchemaViolation as exc:
        # The cluster refuses what the spec asks for; it will not change its
        # mind. The run is failed after the commit, in a transaction of its
        # own: failing it here would write its journal entry in the middle
        # of whatever opened its gate (another run's finish), ahead of locks
        # that finish still takes. Until then it keeps waiting, due again
        # shortly, so a process that dies before the failure leaves it to
        # the scheduler, which meets the same refusal.
        run.waiting_for = waiting_for
        run.not_before = now + timedelta(seconds=settings.ADMISSION_RETRY_SECONDS)
        run.save(update_fields=[*GATE_FIELDS, "updated_at"])
        message = "; ".join(text for texts in exc.details["fields"].values() for text in texts)
        transaction.on_commit(
            lambda: _fail_rejected(run, message or "the backend refused the run"), robust=True
        )
        return 0
    reason = (waiting_for or {}).get("reason", "")
    metrics.RUNS_ADMITTED.labels(reason=reason).inc()
    metrics.ADMISSION_LATENCY_SECONDS.labels(reason=reason).observe(
        max(0.0, (timezone.now() - opened_at).total_seconds())
    )
    if reason == RUN_AT and run.run_at is not None:
        lag = max(0.0, (timezone.now() - run.run_at).total_seconds())
        metrics.SCHEDULER_LAG_SECONDS.labels(kind=_lag_kind(run.schedule_id is not None)).observe(lag)
    logger.info("run admitted", extra={"runId": str(run.id), "event": "run_admitted"})
    return 1


def _fail_rejected(run: Run, message: str) -> None:
    from runs import services  # services imports this module

    try:
        services.fail_run(run.id, DISPATCH_REJECTED, message)
    except InvalidTransition:
        return  # canceled (or failed by its dependencies) meanwhile
    if (run.waiting_for or {}).get("reason") == concurrency.CONCURRENCY and run.concurrency_key:
        admit_waiting(run.concurrency_key)  # the slot it would have had goes to the next in line
