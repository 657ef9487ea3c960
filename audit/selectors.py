"""Reads of the audit trail for the API and the admin."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from audit.models import AuditEvent
from runs.exceptions import BadParameter


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    owner: str | None = None


def _encode(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{entry_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        kind, _, number = raw.partition(":")
        if kind != "audit":
            raise ValueError(kind)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", "not a cursor this API returned") from None


def list_entries(
    filters: AuditFilters, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[AuditEvent], str | None]:
    """Newest first (by id, the order entries were written), keyset-paginated."""
    queryset = AuditEvent.objects.all()
    if filters.actor is not None:
        queryset = queryset.filter(actor=filters.actor)
    if filters.action is not None:
        queryset = queryset.filter(action=filters.action)
    if filters.target_id is not None:
        queryset = queryset.filter(target_id=filters.target_id)
    if filters.after is not None:
        queryset = queryset.filter(at__gt=filters.after)
    if filters.before is not None:
        queryset = queryset.filter(at__lt=filters.before)
    if filters.owner is not None:
        queryset = queryset.filter(owner=filters.owner)
    if cursor:
        queryset = queryset.filter(id__lt=_decode(cursor))
    rows = list(queryset.order_by("-id")[: limit + 1])
    next_cursor = _encode(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor
