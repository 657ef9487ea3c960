"""Creating many runs in one transaction, for the scheduler's ticks.

The same record as `services.create_run` makes one run at a time (row,
backend hand-over, per-run wake-up, journal entry), in a few statements for
the whole set instead of several per run: 10,000 schedules that tick at the
same instant must all have their runs within a second.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from journal import services as journal
from orchestrator import copy_rows
from runs import admission, metrics, notify
from runs.backends import get_backend
from runs.models import Run
from runs.services import validate_spec

logger = logging.getLogger("runs.services")


@dataclass(frozen=True)
class Draft:
    """A run to create: its id is chosen by the caller, so records made in
    the same transaction (a schedule's tick) can name it first."""

    id: uuid.UUID
    mode: str
    spec: dict[str, Any] | None
    metadata: dict[str, Any]
    owner: str
    schedule_id: uuid.UUID | None = None
    scheduled_for: datetime | None = None
    # A future runAt holds the run (pending, waitingFor runAt) until the
    # scheduler hands it over then; the rest are handed over at once.
    run_at: datetime | None = None


def create_runs(drafts: list[Draft], *, now: datetime | None = None) -> list[Run]:
    """Record the runs and hand them to their backends, inside the caller's
    transaction (which should end soon after: the journal is written last).

    Raises what `create_run` raises for one of them (SchemaViolation,
    BackendUnavailable); then none is recorded once the caller rolls back.
    A draft's `run_at` after `now` (the caller's clock) holds its run."""
    if not drafts:
        return []
    runs = []
    held = False
    now = now or timezone.now()
    for draft in drafts:
        validate_spec(draft.mode, draft.spec)
        run = Run(
            id=draft.id,
            mode=draft.mode,
            spec=draft.spec,
            metadata=draft.metadata or {},
            owner=draft.owner,
            schedule_id=draft.schedule_id,
            scheduled_for=draft.scheduled_for,
        )
        if admission.hold_until(run, draft.run_at, now=now):
            held = True
        runs.append(run)
    copy_rows.insert_rows(runs)
    by_mode: dict[str, list[Run]] = {}
    for run in runs:
        if not run.is_held:
            by_mode.setdefault(run.mode, []).append(run)
    for mode, of_mode in by_mode.items():
        get_backend(mode).dispatch_many(of_mode)
    notify.runs_changed([str(run.id) for run in runs])
    if held:
        admission.wake_scheduler()
    journal.record_many(runs, journal.CREATED)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.mode] = counts.get(run.mode, 0) + 1

    def count_created() -> None:
        for mode, count in counts.items():
            metrics.RUNS_CREATED.labels(mode=mode).inc(count)

    transaction.on_commit(count_created)
    for run in runs:
        logger.info("run created", extra={"runId": str(run.id), "mode": run.mode, "event": "run_created"})
    return runs
