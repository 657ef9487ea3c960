"""Reads of webhooks and deliveries: what the API and the admin share, and
what the fan-out and the deliverer read."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Min, Q, QuerySet
from django.db.models.functions import Now

from runs.exceptions import BadParameter
from runs.wire import format_ts, parse_ts
from webhooks.exceptions import DeliveryNotFound, WebhookNotFound
from webhooks.models import Delivery, RunWebhook, Webhook


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def get_webhook(webhook_id: Any) -> Webhook:
    pk = _uuid_or_none(webhook_id)
    webhook = Webhook.objects.filter(pk=pk).first() if pk else None
    if webhook is None:
        raise WebhookNotFound()
    return webhook


def get_delivery(webhook: Webhook, delivery_id: Any) -> Delivery:
    pk = _uuid_or_none(delivery_id)
    delivery = Delivery.objects.filter(pk=pk, webhook=webhook).first() if pk else None
    if delivery is None:
        raise DeliveryNotFound()
    return delivery


def _encode_cursor(created_at: datetime, pk: uuid.UUID) -> str:
    raw = f"{format_ts(created_at)}|{pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return parse_ts(created), uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", "not a cursor this API returned") from None


def _newest_first_page(
    queryset: QuerySet[Any], limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Keyset pages on (created_at, id), newest first: pages never skip or repeat."""
    if cursor:
        created, pk = _decode_cursor(cursor)
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    next_cursor = (
        _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return rows[:limit], next_cursor


def list_webhooks(
    *, owner: str | None = None, active: bool | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[Webhook], str | None]:
    queryset = Webhook.objects.all()
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    if active is not None:
        queryset = queryset.filter(active=active)
    return _newest_first_page(queryset, limit, cursor)


def list_deliveries(
    webhook: Webhook, *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[Delivery], str | None]:
    queryset = Delivery.objects.filter(webhook=webhook).defer("payload")
    if status is not None:
        queryset = queryset.filter(status=status)
    return _newest_first_page(queryset, limit, cursor)


def active_webhooks() -> list[Webhook]:
    """Every active subscription, with what the fan-out matches entries on."""
    return list(Webhook.objects.filter(active=True).only("id", "events", "owner", "created_at"))


def active_run_webhooks(run_ids: Iterable[Any]) -> dict[Any, RunWebhook]:
    """The active per-run webhook of each of these runs that has one, by run id."""
    return {hook.run_id: hook for hook in RunWebhook.objects.filter(run_id__in=set(run_ids), active=True)}


def backlog() -> tuple[int, datetime | None]:
    """How many pending deliveries are due now, and when the oldest pending one was made."""
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    due = pending.filter(next_attempt_at__lte=Now()).count()
    return due, pending.aggregate(oldest=Min("created_at"))["oldest"]
