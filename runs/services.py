"""Every write to runs and checkpoints. Views, admin actions, management
commands and workers all call these, so the state machine has one home."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from journal import services as journal
from runs import (
    admission,
    checkpoint_writer,
    concurrency,
    dependencies,
    metrics,
    notify,
    retries,
    selectors,
    states,
)
from runs import priority as run_priority
from runs.backends import get_backend
from runs.exceptions import (
    AttemptSuperseded,
    CheckpointKeyConflict,
    IdempotencyConflict,
    InvalidTransition,
    RunFinished,
    RunNotFound,
    SchemaViolation,
)
from runs.models import HELD, Checkpoint, Run
from runs.validation import validate
from runs.wire import format_ts, run_to_wire

logger = logging.getLogger("runs.services")


def validate_spec(mode: str, spec: dict[str, Any] | None) -> None:
    """Mode-specific rules on top of the request schema (k8s needs an image...)."""
    if spec is None:
        if mode == "k8s":
            raise SchemaViolation({"spec": ["k8s runs need a spec with an image"]})
        return
    validate(f"run.schema.json#/$defs/{mode}Spec", spec, prefix="spec")


def _fingerprint(
    mode: str, spec: Any, metadata: Any, run_at: datetime | None, admission_fields: dict[str, Any]
) -> str:
    parts = [mode, spec, metadata]
    if run_at is not None:  # runs without runAt keep the fingerprints they always had
        parts.append(run_at.isoformat())
    if admission_fields:  # and so do runs without admission fields
        parts.append(admission_fields)
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay_idempotent(owner: str, key: str, fingerprint: str) -> Run | None:
    existing = Run.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict(str(existing.id))
    return existing


def create_run(
    *,
    mode: str,
    spec: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    owner: str = "",
    idempotency_key: str | None = None,
    retry_of: Run | None = None,
    run_at: datetime | None = None,
    retry: dict[str, Any] | None = None,
    depends_on: list[Any] | None = None,
    visible_to: str | None = None,
    concurrency_limit: dict[str, Any] | None = None,
    priority: int | None = None,
    schedule_id: uuid.UUID | None = None,
    scheduled_for: datetime | None = None,
    with_run: Callable[[Run], None] | None = None,
) -> tuple[Run, bool]:
    """Record a run and hand it to its backend. Returns (run, created).

    With `run_at` in the future the run is recorded pending and held: the
    scheduler hands it over then (`runs.admission`). `retry` is the retry
    policy of the wire (`runs.retries`). `depends_on` names the runs this
    one waits for (`runs.dependencies`); a credential limited to an owner
    (`visible_to`) may name only that owner's runs. `concurrency_limit`
    (`{"key", "limit"}`) caps the runs of a key handed over at once
    (`runs.concurrency`). `priority` (0..9, None: 5) orders the handed-over
    runs waiting for a worker (`runs.priority`).

    `with_run` is called with the new run inside its creating transaction,
    before the journal entry, for records that belong with the run (its
    per-run webhook): whoever reads the entry finds them.

    With an idempotency key already used by this owner, returns the first
    run (created=False) when the request is the same, and raises
    IdempotencyConflict when it is not.
    """
    validate_spec(mode, spec)
    metadata = metadata or {}
    dependency_ids = dependencies.parse_ids(depends_on)
    level = run_priority.parse(priority)
    requested = {
        name: value
        for name, value in (
            ("retry", retry),
            ("dependsOn", [str(i) for i in dependency_ids] or None),
            ("concurrency", concurrency_limit),
            ("priority", priority),
        )
        if value is not None
    }
    fingerprint = _fingerprint(mode, spec, metadata, run_at, requested) if idempotency_key else ""
    if idempotency_key:
        existing = _replay_idempotent(owner, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            found = dependencies.statuses(dependency_ids, owner=visible_to)
            broken = dependencies.failed_dependency(found)
            run = Run(
                mode=mode,
                spec=spec,
                metadata=metadata,
                owner=owner,
                idempotency_key=idempotency_key,
                idempotency_fingerprint=fingerprint,
                retry_of=retry_of,
                retry=retries.normalise_policy(retry, spec),
                depends_on=[str(run_id) for run_id in dependency_ids] or None,
                concurrency_key=(concurrency_limit or {}).get("key"),
                concurrency_limit=(concurrency_limit or {}).get("limit"),
                priority=level,
                schedule_id=schedule_id,
                scheduled_for=scheduled_for,
            )
            # The key's row first (it is locked until the commit): its limit
            # is the latest run's, and its slots are counted under the lock.
            key_row = (
                concurrency.set_key(run.concurrency_key, run.concurrency_limit or 1)
                if run.concurrency_key
                else None
            )
            timed = admission.hold_until(run, run_at)
            if broken is not None:
                run.not_before = run.waiting_for = None  # failed below, never dispatched
            elif not timed:
                run.waiting_for = dependencies.gate_for(
                    [run_id for run_id in dependency_ids if found[run_id] != states.COMPLETED]
                ) or concurrency.gate(run, key_row)
            run.save(force_insert=True)
            dependencies.record_edges(run, dependency_ids)
            if with_run is not None:
                with_run(run)
            if broken is None and timed:
                admission.wake_scheduler()
            elif broken is None and run.waiting_for is None:
                get_backend(mode).dispatch(run)
            notify.run_changed(str(run.id))
            # Last: the journal's clock is held from here to the commit.
            journal.record(run, journal.CREATED, at=run.created_at)
            if broken is not None:
                _apply_status(run, states.FAILED, error=dependencies.dependency_error(broken, found[broken]))
    except IntegrityError:
        # A concurrent request with the same key won the race.
        if idempotency_key:
            existing = _replay_idempotent(owner, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        raise
    metrics.RUNS_CREATED.labels(mode=mode).inc()
    logger.info("run created", extra={"runId": str(run.id), "mode": mode, "event": "run_created"})
    return run, True


def plan_run(
    *,
    target: str,
    spec: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    owner: str = "",
    run_at: datetime | None = None,
    retry: dict[str, Any] | None = None,
    depends_on: list[Any] | None = None,
    visible_to: str | None = None,
    concurrency_limit: dict[str, Any] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """What creating this run would do, without creating or sending anything."""
    validate_spec(target, spec)
    level = run_priority.parse(priority)
    dependency_ids = dependencies.parse_ids(depends_on)
    found = dependencies.statuses(dependency_ids, owner=visible_to, lock=False)
    now = timezone.now()
    preview = Run(
        mode=target,
        spec=spec,
        metadata=metadata or {},
        owner=owner,
        retry=retries.normalise_policy(retry, spec),
        depends_on=[str(run_id) for run_id in dependency_ids] or None,
        concurrency_key=(concurrency_limit or {}).get("key"),
        concurrency_limit=(concurrency_limit or {}).get("limit"),
        priority=level,
    )
    preview.created_at = preview.updated_at = now
    held = admission.hold_until(preview, run_at, now=now)
    dispatch_at = admission.dispatch_at(preview, now=now)
    backend = get_backend(target)
    hold = f"hold the run until runAt, {format_ts(dispatch_at)}: the scheduler then hands it over"
    steps = [
        f"validate the spec for {target} mode",
        "record the run with status pending",
        *([hold] if held else []),
        *_dependency_steps(found),
        *_concurrency_steps(preview),
        *backend.plan_steps(preview),
        *_retry_steps(preview),
    ]
    return {
        "steps": steps,
        "target": target,
        "run": run_to_wire(preview),
        "dispatch": backend.describe(preview),
        "dispatchAt": format_ts(dispatch_at),
    }


def _dependency_steps(found: dict[uuid.UUID, str]) -> list[str]:
    if not found:
        return []
    broken = dependencies.failed_dependency(found)
    if broken is not None:
        return [f"fail the run with error.code dependency_failed: run {broken} is {found[broken]}"]
    left = [str(run_id) for run_id, status in found.items() if status != states.COMPLETED]
    if not left:
        return [f"its {len(found)} dependencies have completed: no wait for them"]
    return [
        f"hold the run until {len(left)} of its {len(found)} dependencies complete ({', '.join(left)}); "
        "should one fail or be canceled, fail it with error.code dependency_failed"
    ]


def _concurrency_steps(run: Run) -> list[str]:
    if not run.concurrency_key:
        return []
    key, limit = run.concurrency_key, run.concurrency_limit
    busy = Run.objects.filter(concurrency.ACTIVE, concurrency_key=key).count()
    state = "a slot is free now" if busy < (limit or 1) else "the key is full now: it would wait"
    return [
        f"take a slot of concurrency key {key!r} (at most {limit} handed over or running; "
        f"{busy} now, {state}), or wait pending, oldest first, until one frees"
    ]


def _retry_steps(run: Run) -> list[str]:
    policy = run.retry
    if not policy or policy["maxAttempts"] <= 1:
        return []
    first = retries.backoff_seconds(policy, 1, jitter=False)
    return [
        f"a failed attempt with attempts left (of {policy['maxAttempts']}) goes back to pending and "
        f"waits for its backoff ({first:g} s after the first, times {policy['backoffFactor']:g} each time, "
        f"at most {policy['maxBackoffSeconds']:g} s, less up to {int(retries.JITTER * 100)}% jitter)"
    ]


def retry_run(run_id: Any, *, owner: str | None = None) -> Run:
    """A new run from the same spec, linked to the original."""
    original = _require_run(run_id)
    run, _ = create_run(
        mode=original.mode,
        spec=original.spec,
        metadata=original.metadata,
        owner=original.owner if owner is None else owner,
        retry_of=original,
        retry=original.retry,
        # The same customer's limit still applies; its dependencies were met or broken already.
        concurrency_limit=(
            {"key": original.concurrency_key, "limit": original.concurrency_limit}
            if original.concurrency_key
            else None
        ),
        priority=original.priority,
    )
    return run


def _run_pk(run_id: Any) -> uuid.UUID:
    """The run's primary key; an id that is not a UUID names no run."""
    try:
        return run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        raise RunNotFound() from None


def _require_run(run_id: Any, *, for_update: bool = False) -> Run:
    run = selectors.get_run(run_id, for_update=for_update)
    if run is None:
        raise RunNotFound()
    return run


def _apply_status(run: Run, new: str, *, error: dict[str, Any] | None = None) -> None:
    if not states.can_transition(run.status, new):
        raise InvalidTransition(run.status, new)
    # A handed-over attempt that fails (a Job may fail before we ever saw it
    # running) may be retried; a held run never started an attempt.
    if new == states.FAILED and not run.is_held and retries.should_retry(run, error):
        _retry(run, error)
        return
    now = timezone.now()
    was_held = run.is_held
    frees_slot = states.is_final(new) and concurrency.holds_slot(run)
    # Before the journal entry below: every run a finish changes is locked
    # first, rows of runs before rows of keys (runs.concurrency).
    followers = dependencies.lock_followers(run, new)
    follower_keys = [follower.concurrency_key for follower in followers if follower.concurrency_key]
    if follower_keys:  # several keys: all at once, in key order
        concurrency.lock_keys(follower_keys)
    run.status = new
    if new == states.RUNNING and run.started_at is None:
        run.started_at = now
    if states.is_final(new):
        run.finished_at = now
    if error is not None:
        run.error = error
    elif new == states.COMPLETED:
        run.error = None  # an earlier attempt's error: the last attempt had none
    gates = admission.clear_gates(run)
    run.save(update_fields=["status", "started_at", "finished_at", "error", "updated_at", *gates])
    notify.run_changed(str(run.id))
    if was_held:
        admission.wake_scheduler()
    # The callers commit right after this: the journal's clock is taken last
    # (but for the runs waiting for this one, all locked above, and the next
    # run of the key, whose locks are only tried: runs.concurrency).
    journal.record(run, journal.status_type(new), at=now)
    if frees_slot:
        admission.hand_over_freed(run, now)
    if followers:
        dependencies.release_followers(
            run,
            new,
            followers,
            fail=lambda follower, error: _apply_status(follower, states.FAILED, error=error),
            admit=lambda follower: admission.admit_locked(follower, now),
        )
    transaction.on_commit(lambda: _count_status_change(run, new))
    logger.info(
        "run status changed",
        extra={"runId": str(run.id), "status": new, "event": "run_status"},
    )


def _retry(run: Run, error: dict[str, Any] | None, *, backoff: bool = True) -> None:
    """running → pending for another attempt (runs.retries): the failed
    attempt's error stays, `attempt` goes up, and with `backoff` the run is
    held until its backoff passes (the scheduler then hands it over)."""
    now = timezone.now()
    failed_attempt = run.attempt
    frees_slot = backoff and concurrency.holds_slot(run)
    run.status = states.PENDING
    run.attempt += 1
    run.error = error
    if backoff:
        retries.hold_for_backoff(run, now)
    run.save(update_fields=["status", "attempt", "error", "updated_at", *admission.GATE_FIELDS])
    notify.run_changed(str(run.id))
    if backoff:
        admission.wake_scheduler()
    journal.record(run, journal.RETRYING, at=now)
    # Waiting for its backoff, the run gives its key's slot to the next in line.
    if frees_slot:
        admission.hand_over_freed(run, now)
    transaction.on_commit(lambda: metrics.RUN_RETRIES.labels(mode=run.mode).inc())
    logger.info(
        "run attempt failed: retrying",
        extra={
            "runId": str(run.id),
            "attempt": failed_attempt,
            "code": (error or {}).get("code"),
            "notBefore": format_ts(run.not_before),
            "event": "run_retrying",
        },
    )


def _count_status_change(run: Run, new: str) -> None:
    metrics.RUN_STATUS_CHANGES.labels(mode=run.mode, status=new).inc()
    if not states.is_final(new) or run.finished_at is None:
        return
    metrics.RUNS_FINISHED.labels(mode=run.mode, status=new).inc()
    began = run.started_at or run.created_at
    metrics.RUN_DURATION_SECONDS.labels(mode=run.mode, status=new).observe(
        max(0.0, (run.finished_at - began).total_seconds())
    )


def set_run_status(
    run_id: Any, status: str, *, error: dict[str, Any] | None = None, attempt: int | None = None
) -> Run:
    """A worker's (or the reconciler's) report of where the run is; with
    `attempt`, about that attempt only (AttemptSuperseded when the run has
    moved on to another: a retry's earlier Job reporting late)."""
    with transaction.atomic():
        run = _require_run(run_id, for_update=True)
        if attempt is not None and attempt != run.attempt:
            raise AttemptSuperseded(attempt, run.attempt)
        if status == run.status == states.RUNNING:
            return run  # a repeated "running" report is harmless
        if status == states.RUNNING and run.is_held:
            # A gate (runAt, backoff, dependencies, a concurrency slot) still holds it:
            # starting it anyway would break the gate, a concurrency limit included.
            raise InvalidTransition(run.status, status, waiting_for=run.waiting_for)
        _apply_status(run, status, error=error if status == states.FAILED else None)
    return run


def record_observed_status(
    run_id: Any, status: str, *, attempt: int, error: dict[str, Any] | None = None
) -> Run:
    """Where a backend saw `attempt` get to (the Kubernetes reconciler, from
    its Job and pods). The state machine goes through running, and a fast
    Job may complete before it was ever seen running: it is stepped through
    running first, in the same transaction."""
    with transaction.atomic():
        if status == states.COMPLETED:
            try:
                set_run_status(run_id, states.RUNNING, attempt=attempt)
            except InvalidTransition:
                pass  # already running, or past it: the next step decides
        return set_run_status(run_id, status, error=error, attempt=attempt)


def cancel_run(run_id: Any) -> Run:
    """Mark the run canceled now and tell its backend to stop the work."""
    with transaction.atomic():
        run = _require_run(run_id, for_update=True)
        _apply_status(run, states.CANCELED)
        backend = get_backend(run.mode)
        transaction.on_commit(lambda: _tell_backend_to_cancel(backend, run))
    return run


def _tell_backend_to_cancel(backend: Any, run: Run) -> None:
    try:
        backend.cancel(run)
    except Exception:
        # The run is already canceled; reconcilers and workers re-check it.
        logger.exception("backend cancel failed", extra={"runId": str(run.id)})


def _check_batch_size(items: list[dict[str, Any]]) -> None:
    # Every writer (the API, the Redis workers) is held to it here, once.
    limit = settings.MAX_CHECKPOINT_BATCH
    if len(items) > limit:
        raise SchemaViolation({"checkpoints": [f"at most {limit} per batch"]})


def _check_data_size(items: list[dict[str, Any]]) -> None:
    limit = settings.MAX_CHECKPOINT_DATA_BYTES
    # The items' data encoded together is longer than any one of them: when it
    # fits, each does, and one encoding took the place of one per item.
    if (
        len(items) > 1
        and len(json.dumps([item.get("data") for item in items], separators=(",", ":"))) <= limit
    ):
        return
    too_large: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        size = len(json.dumps(item.get("data"), separators=(",", ":")))
        if size > limit:
            too_large[f"checkpoints[{index}].data"] = [f"{size} bytes, over the limit of {limit}"]
    if too_large:
        raise SchemaViolation(too_large)


def _trimmed_types(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items with each `type` stripped of surrounding whitespace; a blank one is a 422."""
    trimmed = []
    blank: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        kind = item["type"].strip()
        if not kind:
            blank[f"checkpoints[{index}].type"] = ["must not be blank"]
        trimmed.append(item if kind == item["type"] else {**item, "type": kind})
    if blank:
        raise SchemaViolation(blank)
    return trimmed


def append_checkpoints(run_id: Any, items: list[dict[str, Any]]) -> list[checkpoint_writer.Appended]:
    """Append checkpoints in order; see `runs.checkpoint_writer` for the guarantees."""
    return _append_checked(*checked_append(run_id, items))


def checked_append(run_id: Any, items: list[dict[str, Any]]) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """What an append is held to before anything is stored: the run's primary
    key and the items as they will be stored, or the error that refuses them."""
    _check_batch_size(items)
    _check_data_size(items)
    return _run_pk(run_id), _trimmed_types(items)


def _append_checked(run_pk: uuid.UUID, items: list[dict[str, Any]]) -> list[checkpoint_writer.Appended]:
    try:
        rows = checkpoint_writer.append(run_pk, items)
    except checkpoint_writer.AppendRefused as refused:
        if refused.status is None:
            raise RunNotFound() from None
        raise RunFinished(refused.status) from None
    except checkpoint_writer.KeyConflict as conflict:
        stored = str(conflict.stored.pk) if conflict.stored is not None else None
        raise CheckpointKeyConflict(conflict.key, stored) from None
    appended = sum(1 for row in rows if not row.replayed)
    transaction.on_commit(lambda: metrics.CHECKPOINTS_APPENDED.inc(appended))
    return rows


# SQLSTATE classes of a statement the server refused and rolled back: data (22),
# integrity (23), transaction rollback (40, a deadlock). After any other failure,
# a lost connection above all, the commit may have happened: nothing is tried again.
_ROLLED_BACK_CLASSES = ("22", "23", "40")


def append_checkpoints_together(
    requests: list[tuple[uuid.UUID, list[dict[str, Any]]]],
) -> list[list[checkpoint_writer.Appended] | Exception]:
    """The appends of many requests, each already `checked_append`, stored in
    one statement where they can be (group commit); each answered with its
    own checkpoints, or with the error it would have met alone.

    A request the statement leaves out (a missing or final run, a key its run
    holds, a key an earlier request of the group carries) is appended alone
    afterwards, and so is every request when the server refused the whole
    statement (one bad request must not fail the rest). A failure after which
    the group may have been stored is raised, for every request to answer.
    """
    outcomes: list[list[checkpoint_writer.Appended] | Exception | None] = [None] * len(requests)
    together, alone = _groupable(requests)
    if together:
        try:
            stored = checkpoint_writer.append_together([requests[i] for i in together])
        except DatabaseError as exc:
            if not str(getattr(exc.__cause__, "sqlstate", None) or "").startswith(_ROLLED_BACK_CLASSES):
                raise
            stored = [None] * len(together)
        appended = 0
        for index, rows in zip(together, stored, strict=True):
            if rows is None:
                alone.append(index)
            else:
                outcomes[index] = rows
                appended += len(rows)
        transaction.on_commit(lambda: metrics.CHECKPOINTS_APPENDED.inc(appended))
    for index in sorted(alone):
        try:
            outcomes[index] = _append_checked(*requests[index])
        except Exception as exc:  # this request's own answer; the others go on
            outcomes[index] = exc
    return outcomes  # every request has its outcome by now, none is left None


def _groupable(requests: list[tuple[uuid.UUID, list[dict[str, Any]]]]) -> tuple[list[int], list[int]]:
    """The requests one statement can store, and those to append alone: a
    request repeating a key, or carrying a key an earlier one of the same run does."""
    together: list[int] = []
    alone: list[int] = []
    taken: set[tuple[uuid.UUID, str]] = set()
    for index, (run_pk, items) in enumerate(requests):
        keys = [(run_pk, item["key"]) for item in items if item.get("key") is not None]
        if len(set(keys)) != len(keys) or not taken.isdisjoint(keys):
            alone.append(index)
        else:
            taken.update(keys)
            together.append(index)
    return together, alone


def requeue_stale_runs(*, older_than: timedelta, dry_run: bool = False) -> list[Run]:
    """Pending runs older than `older_than` that have a spec: make sure their
    backend holds them (a dispatch lost to an outage is sent again)."""
    cutoff = timezone.now() - older_than
    stale = Run.objects.filter(status=states.PENDING, created_at__lt=cutoff, spec__isnull=False).exclude(HELD)
    requeued = []
    for run in stale.order_by("created_at").iterator():
        if dry_run or get_backend(run.mode).ensure_dispatched(run):
            requeued.append(run)
    return requeued


def lost_running_runs(*, quiet_for: timedelta) -> list[Run]:
    """Running runs without news (status, checkpoints) for `quiet_for` that
    their backend no longer holds: no worker's lease and no queue entry, or
    no Job. Changes nothing."""
    cutoff = timezone.now() - quiet_for
    quiet = Run.objects.filter(status=states.RUNNING, updated_at__lt=cutoff).order_by("updated_at")
    return _lost_by_backend(list(quiet))


def release_lost_runs(suspects: Iterable[Run]) -> list[tuple[Run, str]]:
    """Look again at runs `lost_running_runs` named, a lease period later
    (time for a live worker's heartbeat to take back a lease Redis lost).
    Each run still lost is handed back to its backend for another attempt
    ("resent"), or failed with the backend's error ("failed")."""
    still_running = list(Run.objects.filter(pk__in=[run.pk for run in suspects], status=states.RUNNING))
    outcomes: list[tuple[Run, str]] = []
    for run in _lost_by_backend(still_running):
        error = get_backend(run.mode).release_lost(run)
        if error is None:
            outcomes.append((run, "resent"))
            continue
        try:
            outcomes.append((set_run_status(run.id, states.FAILED, error=error), "failed"))
        except InvalidTransition:
            continue  # it finished meanwhile
    return outcomes


def _lost_by_backend(runs: list[Run]) -> list[Run]:
    """Each backend's `lost_running` over its own runs."""
    by_mode: dict[str, list[Run]] = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run)
    return [lost for mode, group in by_mode.items() for lost in get_backend(mode).lost_running(group)]


# --- Worker attempts (Redis mode) ---
# A worker holds a run under a lease and stamps its writes with the attempt it
# started; a write from an attempt that another worker took over is refused,
# so a worker that stalled past its lease cannot touch the run again.


def begin_attempt(run_id: Any) -> Run:
    """A worker (holding the run's lease) starts executing the run.

    A pending run that was handed over becomes running. A run already
    running lost its previous worker: that attempt failed with `worker_lost`;
    with attempts left (runs.retries) the run is retried, at once (the lease
    period it took to notice is its backoff), and this worker runs the next
    attempt; otherwise it fails. Check the returned run's status: anything
    but running is not this worker's to execute (it is final, or held by an
    admission gate). Raises RunFinished when the run is already final.
    """
    with transaction.atomic():
        run = _require_run(run_id, for_update=True)
        if run.is_final:
            raise RunFinished(run.status)
        if run.is_held:
            return run  # a stale queue entry of a run waiting for a gate
        if run.status == states.RUNNING:
            message = f"the worker running attempt {run.attempt} stopped answering"
            error = {"code": retries.WORKER_LOST, "message": message}
            if not retries.should_retry(run, error):
                _apply_status(run, states.FAILED, error={**error, "message": f"{message}; no attempts left"})
                return run
            _retry(run, error, backoff=False)
        _apply_status(run, states.RUNNING)
    return run


def _current_attempt(run_id: Any, attempt: int) -> Run:
    run = _require_run(run_id, for_update=True)
    if run.is_final:
        raise RunFinished(run.status)
    if run.attempt != attempt:
        raise AttemptSuperseded(attempt, run.attempt)
    return run


def append_attempt_checkpoints(
    run_id: Any, attempt: int, items: list[dict[str, Any]]
) -> list[checkpoint_writer.Appended]:
    """append_checkpoints for the worker running `attempt` (AttemptSuperseded otherwise)."""
    with transaction.atomic():
        _current_attempt(run_id, attempt)
        return append_checkpoints(run_id, items)


def finish_attempt(run_id: Any, attempt: int, status: str, *, error: dict[str, Any] | None = None) -> Run:
    """The worker running `attempt` reports the end: completed, or failed with `error`."""
    with transaction.atomic():
        run = _current_attempt(run_id, attempt)
        _apply_status(run, status, error=error if status == states.FAILED else None)
    return run


def fail_run(run_id: Any, code: str, message: str, *, attempt: int | None = None) -> Run:
    """Fail a run with `error.code` `code` (for `attempt` only, when given)."""
    error = {"code": code, "message": message[:4000]}
    if attempt is not None:
        return finish_attempt(run_id, attempt, states.FAILED, error=error)
    return set_run_status(run_id, states.FAILED, error=error)


# --- Retention ---


@dataclass(frozen=True)
class PruneBatch:
    """One committed batch of `prune_finished_runs` (or, dry, what it would hold)."""

    runs: int
    checkpoints: int


def _prunable(older_than: timedelta, statuses: tuple[str, ...]) -> QuerySet[Run]:
    unknown = [status for status in statuses if not states.is_final(status)]
    if unknown:
        raise ValueError(f"only finished runs can be pruned, not {', '.join(unknown)}")
    cutoff = timezone.now() - older_than
    return Run.objects.filter(status__in=statuses or tuple(states.FINAL_STATUSES)).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    )


def prune_finished_runs(
    *,
    older_than: timedelta,
    statuses: tuple[str, ...] = (),
    batch_size: int = 500,
    dry_run: bool = False,
) -> Iterator[PruneBatch]:
    """Delete finished runs that ended before `older_than` ago, with their checkpoints.

    Yields after each batch. Every batch is its own short transaction, and a
    run's checkpoints go `batch_size * 20` rows at a time before the run
    itself, so no statement holds locks for long however large the runs are.
    A finished run never changes again, so deleting it races no writer.
    Runs that were retried from a pruned run keep existing; their `retry_of`
    becomes null.
    """
    queryset = _prunable(older_than, statuses)
    if dry_run:
        ids_in_order = queryset.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=batch_size)
        for ids in _id_batches(ids_in_order, batch_size):
            yield PruneBatch(runs=len(ids), checkpoints=Checkpoint.objects.filter(run_id__in=ids).count())
        return
    checkpoint_chunk = batch_size * 20
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        checkpoints = 0
        while True:
            with transaction.atomic():
                chunk = Checkpoint.objects.filter(run_id__in=ids).values("pk")[:checkpoint_chunk]
                deleted, _ = Checkpoint.objects.filter(pk__in=chunk).delete()
            checkpoints += deleted
            if deleted < checkpoint_chunk:
                break
        with transaction.atomic():
            # Runs retried from these keep existing: the collector nulls their retry_of.
            _, per_model = Run.objects.filter(pk__in=ids).delete()
        runs = per_model.get(Run._meta.label, 0)
        logger.info(
            "runs pruned",
            extra={"event": "runs_pruned", "runs": runs, "checkpoints": checkpoints},
        )
        yield PruneBatch(runs=runs, checkpoints=checkpoints)


def count_prunable(*, older_than: timedelta, statuses: tuple[str, ...] = ()) -> int:
    return _prunable(older_than, statuses).count()


def _id_batches(ids: Iterable[uuid.UUID], size: int) -> Iterator[list[uuid.UUID]]:
    batch: list[uuid.UUID] = []
    for run_id in ids:
        batch.append(run_id)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
