"""The wire format: models to camelCase JSON, and timestamps to and from text.

Timestamps are RFC 3339 UTC with exactly six fractional digits, so that their
text order is their time order and a checkpoint `ts` round-trips through an
SSE id without loss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import MAXYEAR, UTC, datetime
from typing import TYPE_CHECKING, Any

from runs.models import Checkpoint, Run

if TYPE_CHECKING:
    from runs.checkpoint_writer import Appended

_TS_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6})\d*)?(Z|z|[+-]\d{2}:\d{2})$"
)


def format_ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such a year without leading zeros; kept as it was
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # A third of strftime's cost, and a batch's answer holds a hundred of these.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - the fastest of the ways measured
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
    )  # fmt: skip


def format_ts_all(values: Iterable[datetime]) -> list[str]:
    """`format_ts` of each value, in one pass.

    A batch's stamps are mostly within one second of each other (the append
    computes consecutive microseconds, though a group's rows are read back
    as stored and may not be): the text up to the second is written once per
    second met, and each stamp adds its microseconds.
    """
    texts: list[str] = []
    second: datetime | None = None
    head = ""
    for value in values:
        utc = value.astimezone(UTC)
        if second is not None:
            step = utc - second
            if not step.days and not step.seconds:  # the same whole second (days < 0 when earlier)
                texts.append(f"{head}{utc.microsecond:06d}Z")
                continue
        text = format_ts(utc)
        texts.append(text)
        head = text[:-7]  # every text ends in the six digits of its microseconds and "Z"
        second = utc.replace(microsecond=0)
    return texts


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; ValueError on anything else."""
    match = _TS_PATTERN.match(text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    normalised = (
        f"{year}-{month}-{day}T{hour}:{minute}:{second}.{(fraction or '0').ljust(6, '0')}"
        f"{'+00:00' if zone in ('Z', 'z') else zone}"
    )
    local = datetime.fromisoformat(normalised)
    try:
        return local.astimezone(UTC)
    except OverflowError:
        # A valid RFC 3339 time outside what a datetime holds once in UTC
        # (9999-12-31T23:59:59-23:59, 0001-01-01T00:00:00+23:59): nothing is
        # stored beyond the last (or before the first) instant, so as a bound
        # it means that instant.
        return datetime.max.replace(tzinfo=UTC) if local.year == MAXYEAR else datetime.min.replace(tzinfo=UTC)


def run_to_wire(run: Run) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(run.id),
        "mode": run.mode,
        "status": run.status,
        "createdAt": format_ts(run.created_at),
        "updatedAt": format_ts(run.updated_at),
        "startedAt": format_ts(run.started_at),
        "finishedAt": format_ts(run.finished_at),
        "metadata": run.metadata or {},
        "spec": run.spec,
        "attempt": run.attempt,
        "error": run.error,
        "checkpointCount": run.checkpoint_count,
        "runAt": format_ts(run.run_at),
        "waitingFor": run.waiting_for if run.is_held else None,
        "retry": run.retry,
        "dependsOn": run.depends_on or [],
        "concurrency": (
            {"key": run.concurrency_key, "limit": run.concurrency_limit} if run.concurrency_key else None
        ),
        "priority": run.priority,
    }
    if run.owner:
        body["owner"] = run.owner
    if run.retry_of_id:
        body["retryOf"] = str(run.retry_of_id)
    if run.schedule_id:
        body["scheduleId"] = str(run.schedule_id)
        body["scheduledFor"] = format_ts(run.scheduled_for)
    return body


def checkpoint_to_wire(checkpoint: Checkpoint | Appended) -> dict[str, Any]:
    body = {
        "id": str(checkpoint.pk),
        "runId": str(checkpoint.run_id),
        "ts": format_ts(checkpoint.ts),
        "type": checkpoint.type,
        "data": checkpoint.data,
        "seq": checkpoint.seq,
    }
    if checkpoint.key is not None:
        body["key"] = checkpoint.key
    return body
