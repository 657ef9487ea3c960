from __future__ import annotations

from typing import Any

from audit.models import AuditEvent
from runs.wire import format_ts


def entry_to_wire(entry: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "at": format_ts(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "targetType": entry.target_type,
        "targetId": entry.target_id,
        "requestId": entry.request_id or None,
        "ip": entry.ip or None,
        "details": entry.details,
    }
