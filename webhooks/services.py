"""Every write to webhooks: subscriptions, their secrets, per-run webhooks
and redeliveries; the deliveries fanned out from the journal; and the
deliverer's claims and what its attempts came to. Sending lives in
`webhooks.deliverer`, and which deliveries an entry makes in
`webhooks.fanout`."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from audit import services as audit
from journal.selectors import entries_after
from runs import services as run_services
from runs.exceptions import SchemaViolation
from runs.models import Run
from runs.validation import validate
from webhooks import fanout, metrics, retries, secrets, transport, urlguard
from webhooks.models import DEFAULT_EVENTS, Delivery, FanoutCursor, RunWebhook, Webhook
from webhooks.selectors import get_delivery, get_webhook

logger = logging.getLogger("webhooks.services")

SCHEMA = "webhook.schema.json"


def _checked_url(url: str, field: str) -> str:
    try:
        urlguard.check(url)
    except urlguard.UnsafeDestination as refused:
        raise SchemaViolation({field: [refused.reason]}) from None
    return url


def create_webhook(body: dict[str, Any]) -> tuple[Webhook, str]:
    """A new subscription and its secret, which is returned here and never again."""
    validate(f"{SCHEMA}#/$defs/createWebhookRequest", body)
    url = _checked_url(body["url"], "url")
    secret = secrets.generate()
    with transaction.atomic():
        webhook = Webhook.objects.create(
            url=url,
            events=list(body.get("events") or DEFAULT_EVENTS),
            owner=body.get("owner"),
            description=body.get("description") or "",
            secret_encrypted=secrets.encrypt(secret),
        )
        audit.record("webhook.create", "webhook", webhook.id, owner=webhook.owner or "", details={"url": url})
    logger.info("webhook created", extra={"webhookId": str(webhook.id), "event": "webhook_created"})
    return webhook, secret


def update_webhook(webhook_id: Any, body: dict[str, Any]) -> Webhook:
    """PATCH: url, events, active, description. Reactivating clears why it was off."""
    validate(f"{SCHEMA}#/$defs/patchWebhookRequest", body)
    if "url" in body:
        _checked_url(body["url"], "url")
    with transaction.atomic():
        webhook = get_webhook(webhook_id)
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        for field in ("url", "events", "description"):
            if field in body:
                setattr(webhook, field, body[field])
        if "active" in body:
            webhook.active = body["active"]
            if webhook.active:
                webhook.inactive_reason = ""
        webhook.save()
        audit.record(
            "webhook.update",
            "webhook",
            webhook.id,
            owner=webhook.owner or "",
            details={"fields": sorted(body)},
        )
    return webhook


def delete_webhook(webhook_id: Any) -> None:
    """The subscription and its deliveries, pending ones included, are gone."""
    webhook = get_webhook(webhook_id)
    with transaction.atomic():
        audit.record(
            "webhook.delete", "webhook", webhook.id, owner=webhook.owner or "", details={"url": webhook.url}
        )
        webhook.delete()
    logger.info("webhook deleted", extra={"webhookId": str(webhook_id), "event": "webhook_deleted"})


def rotate_secret(
    webhook_id: Any, overlap_seconds: int | None = None, *, now: datetime | None = None
) -> tuple[Webhook, str]:
    """A new secret, returned once. For `overlap_seconds` (default
    WEBHOOK_SECRET_OVERLAP_SECONDS) the replaced secret keeps signing beside it,
    so a receiver that knows either verifies; 0 ends the old one at once.

    Only two secrets sign at a time: rotating again during an overlap drops
    the oldest, and the one just replaced starts an overlap of its own.
    """
    if overlap_seconds is None:
        overlap_seconds = settings.WEBHOOK_SECRET_OVERLAP_SECONDS
    now = now or timezone.now()
    secret = secrets.generate()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=get_webhook(webhook_id).pk)
        if overlap_seconds > 0:
            webhook.previous_secret_encrypted = webhook.secret_encrypted
            webhook.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
        else:
            webhook.previous_secret_encrypted = ""
            webhook.previous_secret_expires_at = None
        webhook.secret_encrypted = secrets.encrypt(secret)
        webhook.save(
            update_fields=[
                "secret_encrypted",
                "previous_secret_encrypted",
                "previous_secret_expires_at",
                "updated_at",
            ]
        )
        audit.record(
            "webhook.rotate_secret",
            "webhook",
            webhook.id,
            owner=webhook.owner or "",
            details={"overlapSeconds": overlap_seconds},
        )
    logger.info(
        "webhook secret rotated",
        extra={"webhookId": str(webhook.id), "overlapSeconds": overlap_seconds, "event": "webhook_rotated"},
    )
    return webhook, secret


def rotation_overlap(body: Any) -> int | None:
    """The `overlapSeconds` a rotate-secret request asks for, checked (422 naming
    it otherwise); None when the body leaves it to the server's default."""
    if isinstance(body, dict) and not body:  # no body, or {}
        return None
    validate(f"{SCHEMA}#/$defs/rotateSecretRequest", body)
    return body.get("overlapSeconds")


def redeliver(delivery: Delivery) -> Delivery:
    """Send the delivery again, soon, with the same webhook-id, whatever its
    status; the retry schedule starts over. An attempt in flight loses its
    claim: its outcome is not recorded, and the delivery is sent again."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.PENDING,
            next_attempt_at=Now(),
            claim=None,
            series_start=delivery.attempts,
        )
        audit.record(
            "webhook.redeliver",
            "delivery",
            delivery.id,
            owner=delivery.webhook.owner or "",
            details={"webhookId": str(delivery.webhook_id)},
        )
    delivery.refresh_from_db()
    logger.info("delivery queued again", extra={"deliveryId": str(delivery.id), "event": "redeliver"})
    return delivery


def redeliver_by_id(webhook_id: Any, delivery_id: Any) -> Delivery:
    return redeliver(get_delivery(get_webhook(webhook_id), delivery_id))


# --- Per-run webhooks (the `webhook` of POST /runs) ---


@dataclass(frozen=True)
class RunWebhookRequest:
    url: str
    events: tuple[str, ...]


def check_run_webhook(value: dict[str, Any] | None) -> RunWebhookRequest | None:
    """The per-run webhook asked for, checked; SchemaViolation (422) naming the
    field when it cannot be had (no WEBHOOK_SECRET to sign with, a refused URL)."""
    if value is None:
        return None
    if not secrets.server_secrets():
        raise SchemaViolation({"webhook": ["per-run webhooks need WEBHOOK_SECRET set on the server"]})
    url = _checked_url(value["url"], "webhook.url")
    return RunWebhookRequest(url=url, events=tuple(value.get("events") or DEFAULT_EVENTS))


def create_run(*, webhook: RunWebhookRequest | None, **run_fields: Any) -> tuple[Run, bool]:
    """`runs.services.create_run`, with the per-run webhook recorded in the
    run's creating transaction, before its journal entry, so the fan-out that
    reads the entry finds the webhook. An idempotent replay keeps the first
    request's webhook."""
    if webhook is None:
        return run_services.create_run(**run_fields)

    def attach(run: Run) -> None:
        RunWebhook.objects.create(run=run, url=webhook.url, events=list(webhook.events))

    return run_services.create_run(with_run=attach, **run_fields)


GONE_REASON = "the receiver answered 410 Gone"


def claim_seconds() -> float:
    """How long a claim lasts: well past the longest an attempt may take."""
    return max(settings.WEBHOOK_CLAIM_SECONDS, 4 * settings.WEBHOOK_TIMEOUT_SECONDS)


def claim_deliveries(limit: int) -> list[Delivery]:
    """Up to `limit` due deliveries of active targets, claimed for the calling
    deliverer (see `webhooks.deliverer` for how claims keep one attempt to one
    deliverer)."""
    if limit <= 0:
        return []
    token = uuid.uuid4()
    with transaction.atomic():
        due = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=Now())
            .filter(Q(webhook__isnull=True) | Q(webhook__active=True))
            .filter(Q(run_webhook__isnull=True) | Q(run_webhook__active=True))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        ids = list(due)
        if not ids:
            return []
        Delivery.objects.filter(pk__in=ids).update(
            claim=token,
            attempts=F("attempts") + 1,
            last_attempt_at=Now(),
            next_attempt_at=Now() + timedelta(seconds=claim_seconds()),
        )
    return list(Delivery.objects.filter(pk__in=ids).select_related("webhook", "run_webhook"))


def record_successes(attempts: list[tuple[Delivery, transport.Outcome]]) -> int:
    """Record succeeded attempts where the claim still holds: one statement
    per claim and status, so a batch costs a statement or two."""
    groups: dict[tuple[uuid.UUID | None, int | None], list[uuid.UUID]] = {}
    for delivery, outcome in attempts:
        groups.setdefault((delivery.claim, outcome.status), []).append(delivery.pk)
    recorded = 0
    for (token, status), ids in groups.items():
        recorded += Delivery.objects.filter(pk__in=ids, claim=token).update(
            status=Delivery.Status.SUCCEEDED,
            claim=None,
            next_attempt_at=None,
            delivered_at=Now(),
            last_response_status=status,
            last_error="",
        )
    return recorded


def record_attempt(delivery: Delivery, outcome: transport.Outcome) -> bool:
    """Write what the attempt came to, if this deliverer still holds the claim.
    False when it does not (redelivered, or taken over after the claim expired)."""
    mine = Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim)
    common: dict[str, Any] = {
        "claim": None,
        "last_response_status": outcome.status,
        "last_error": outcome.error,
    }
    if outcome.succeeded:
        return bool(
            mine.update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None, delivered_at=Now(), **common)
        )
    delay = None
    if outcome.kind != "gone":
        delay = retries.delay_after(
            delivery.attempts - delivery.series_start,
            retries.schedule(),
            jitter=settings.WEBHOOK_RETRY_JITTER,
        )
    if delay is not None:
        return bool(mine.update(next_attempt_at=Now() + timedelta(seconds=delay), **common))
    with transaction.atomic():
        updated = mine.update(status=Delivery.Status.FAILED, next_attempt_at=None, **common)
        if updated and outcome.kind == "gone":
            target = Webhook if delivery.webhook_id else RunWebhook
            target.objects.filter(pk=delivery.webhook_id or delivery.run_webhook_id).update(
                active=False, inactive_reason=GONE_REASON
            )
    if updated:
        metrics.DELIVERIES_FAILED.inc()
    return bool(updated)


def fan_out(limit: int = fanout.BATCH) -> int:
    """One fan-out step (see `webhooks.fanout`): the entries after the
    cursor (at most `limit`) become deliveries. Returns how many entries it
    read: 0 when there were none, or when another deliverer holds the
    cursor (it is fanning out)."""
    FanoutCursor.objects.get_or_create(name=fanout.CURSOR)
    with transaction.atomic():
        cursor = FanoutCursor.objects.select_for_update(skip_locked=True).filter(name=fanout.CURSOR).first()
        if cursor is None:
            return 0
        entries = entries_after(cursor.position, limit=limit)
        if not entries:
            return 0
        made = fanout.deliveries_for(entries)
        Delivery.objects.bulk_create(made, ignore_conflicts=True)
        cursor.position = entries[-1].id
        cursor.save(update_fields=["position", "updated_at"])
    if made:
        logger.info(
            "deliveries made", extra={"entries": len(entries), "deliveries": len(made), "event": "fanout"}
        )
    return len(entries)
