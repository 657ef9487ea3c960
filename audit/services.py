"""Writing audit entries. Call `record` inside the transaction of the change."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import context
from audit.models import AuditEvent
from orchestrator import copy_rows
from orchestrator.logging import request_id_var

logger = logging.getLogger("audit.services")

# Details are a summary, not a copy of the request.
MAX_DETAIL_CHARS = 200


def _small(details: dict[str, Any] | None) -> dict[str, Any]:
    small: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
            value = value[:MAX_DETAIL_CHARS] + "…"
        small[key] = value
    return small


def record(
    action: str,
    target_type: str,
    target_id: object,
    *,
    owner: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one entry for a change made by whoever acts in this context."""
    actor, ip = context.current()
    request_id = request_id_var.get()
    return AuditEvent.objects.create(
        actor=actor[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        owner=owner or "",
        request_id="" if request_id == "-" else request_id[:128],
        ip=ip[:64],
        details=_small(details),
    )


# The run journal's types, as audit actions.
_RUN_ACTIONS = {
    "run.created": "run.create",
    "run.canceled": "run.cancel",
}


def run_change_row(run: Any, entry_type: str) -> dict[str, Any]:
    """The audit row of a journaled run change, as column values, for a caller
    that inserts it within a statement of its own (the journal's, on PostgreSQL)."""
    action, details = _run_change(run, entry_type)
    actor, ip = context.current()
    request_id = request_id_var.get()
    return {
        "at": timezone.now(),
        "actor": actor[:200],
        "action": action,
        "target_type": "run",
        "target_id": str(run.id)[:64],
        "owner": run.owner or "",
        "request_id": "" if request_id == "-" else request_id[:128],
        "ip": ip[:64],
        "details": _small(details),
    }


def insert_row(row: dict[str, Any]) -> AuditEvent:
    """Insert a row made by `run_change_row`."""
    return AuditEvent.objects.create(**row)


def record_run_changes(runs: list[Any], entry_type: str) -> None:
    """The audit rows of many runs changed in one transaction, in one insert."""
    actor, ip = context.current()
    request_id = request_id_var.get()
    events = []
    for run in runs:
        action, details = _run_change(run, entry_type)
        events.append(
            AuditEvent(
                actor=actor[:200],
                action=action,
                target_type="run",
                target_id=str(run.id),
                owner=run.owner or "",
                request_id="" if request_id == "-" else request_id[:128],
                ip=ip[:64],
                details=_small(details),
            )
        )
    copy_rows.insert_rows(events)


def _run_change(run: Any, entry_type: str) -> tuple[str, dict[str, Any]]:
    action = _RUN_ACTIONS.get(entry_type, "run.status")
    details: dict[str, Any] = {"status": run.status}
    if entry_type == "run.created":
        details["mode"] = run.mode
        if getattr(run, "retry_of_id", None):
            action = "run.retry"
            details["retryOf"] = str(run.retry_of_id)
        if getattr(run, "schedule_id", None):
            details["scheduleId"] = str(run.schedule_id)
    elif entry_type == "run.retrying":
        details["attempt"] = run.attempt
    return action, details


def prune(*, older_than: timedelta, batch_size: int = 5000, dry_run: bool = False) -> Iterator[int]:
    """Delete the entries older than `older_than`, a batch per transaction; yields each count."""
    cutoff = timezone.now() - older_than
    while True:
        old = AuditEvent.objects.filter(at__lt=cutoff)
        ids = list(old.order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            return
        if dry_run:
            yield old.count()
            return
        with transaction.atomic():
            # A queryset delete never calls the model's delete(), which refuses.
            AuditEvent.objects.filter(id__in=ids).delete()
        logger.info("audit pruned", extra={"event": "audit_pruned", "entries": len(ids)})
        yield len(ids)
        if len(ids) < batch_size:
            return
