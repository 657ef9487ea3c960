"""The event stream's reads of the database: a run, and its tail of
checkpoints encoded as frames. Each read gives its connection back at once,
so an idle subscriber holds none."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from runs import metrics, selectors, states
from runs.models import Checkpoint, Run
from runs.stream import sse
from runs.wire import checkpoint_to_wire, format_ts, run_to_wire


@dataclass(frozen=True)
class TailRead:
    """What one read of a run's tail found, already encoded as frames."""

    status: str
    final: bool
    # Every checkpoint up to the read limit has been read: a final run's
    # `end` may follow only then.
    complete: bool
    status_frame: bytes
    end_frame: bytes
    checkpoints: list[tuple[datetime, bytes]]
    # The run has been running (it has a startedAt) and is no longer: the
    # `running` status event for a subscriber whose reads never caught it.
    was_running_frame: bytes | None = None
    # A retry is a new attempt: pending again (after a backoff) or, for a
    # lost worker, running again at once; either way a status event.
    attempt: int | None = None
    # The run as this read found it: a stream opening on the run meanwhile
    # may start from it instead of reading the run again.
    run: Run | None = None


def status_payload(run: Run) -> dict[str, Any]:
    return {"runId": str(run.id), "status": run.status, "run": run_to_wire(run)}


def was_running_payload(run: Run) -> dict[str, Any]:
    """The run as it was while running, for a status event that came too late to catch it."""
    wire = run_to_wire(run)
    wire.update(status=states.RUNNING, finishedAt=None, error=None)
    return {"runId": str(run.id), "status": states.RUNNING, "run": wire}


def end_event_id(run: Run) -> str | None:
    return format_ts(run.last_checkpoint_ts or run.finished_at)


def checkpoint_frame(checkpoint: Checkpoint) -> bytes:
    return sse.event("checkpoint", checkpoint_to_wire(checkpoint), event_id=format_ts(checkpoint.ts))


def release_connection() -> None:
    """Give this thread's database connection back (to the pool on PostgreSQL)."""
    connection.close()


def drop_broken_connections() -> None:
    """After a failed read. A database restart leaves every pooled connection
    dead; test them all at once rather than failing once per dead one."""
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    if pool is not None:
        pool.check()


def load_run(run_id: uuid.UUID) -> Run | None:
    try:
        return selectors.get_run(run_id)
    finally:
        release_connection()


def read_tail(run_id: uuid.UUID, since: datetime | None, limit: int) -> TailRead | None:
    """The run, then its checkpoints after `since`.

    The run is read first: when it is final, every checkpoint committed
    before its final status (none can commit after), so the checkpoint read
    that follows sees them all and `end` never overtakes one.
    """
    try:
        run = selectors.get_run(run_id)
        if run is None:
            return None
        rows = selectors.checkpoints_after(run_id, since, limit + 1)
    finally:
        release_connection()
    payload = status_payload(run)
    was_running = run.started_at is not None and run.status != states.RUNNING
    return TailRead(
        status=run.status,
        final=run.is_final,
        complete=len(rows) <= limit,
        status_frame=sse.event("status", payload),
        end_frame=sse.event("end", payload, event_id=end_event_id(run)),
        checkpoints=[(row.ts, checkpoint_frame(row)) for row in rows[:limit]],
        was_running_frame=sse.event("status", was_running_payload(run)) if was_running else None,
        attempt=run.attempt,
        run=run,
    )


def observe_delivery(ts: datetime) -> None:
    metrics.EVENT_DELIVERY_SECONDS.observe(max(0.0, time.time() - ts.timestamp()))
