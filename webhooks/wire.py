"""Webhooks, deliveries and delivery bodies in the wire format (camelCase JSON)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone

from runs.wire import format_ts
from webhooks.models import Delivery, Webhook


def webhook_to_wire(webhook: Webhook, *, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(webhook.id),
        "url": webhook.url,
        "events": list(webhook.events),
        "owner": webhook.owner,
        "description": webhook.description,
        "active": webhook.active,
        "inactiveReason": webhook.inactive_reason or None,
        "createdAt": format_ts(webhook.created_at),
        "updatedAt": format_ts(webhook.updated_at),
        "previousSecretExpiresAt": format_ts(webhook.previous_secret_signs_until(timezone.now())),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_to_wire(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "webhookId": str(delivery.webhook_id) if delivery.webhook_id else None,
        "eventType": delivery.event_type,
        "runId": str(delivery.run_id),
        "journalId": str(delivery.journal_id),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastAttemptAt": format_ts(delivery.last_attempt_at),
        "lastResponseStatus": delivery.last_response_status,
        "lastError": delivery.last_error or None,
        "nextAttemptAt": format_ts(delivery.next_attempt_at),
        "deliveredAt": format_ts(delivery.delivered_at),
        "createdAt": format_ts(delivery.created_at),
    }


def event_body(event_type: str, at: datetime, run: dict[str, Any]) -> str:
    """What a receiver gets, as the exact text that is signed and sent."""
    return json.dumps(
        {"type": event_type, "timestamp": format_ts(at), "data": {"run": run}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
