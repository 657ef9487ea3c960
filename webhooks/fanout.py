"""Deliveries made from the run journal: the fan-out step.

Reads the entries after the stored cursor, makes one delivery per entry and
matching target (subscription or per-run webhook), and moves the cursor, in
one transaction: journal ids become visible in increasing order, so reading
"after the cursor" never skips an entry, and a crash leaves both the
deliveries and the cursor as they were. See docs/orchestrator_design.md,
"Webhooks".
"""

from __future__ import annotations

import logging

from django.db import transaction

from journal.models import Entry
from journal.selectors import entries_after
from webhooks.models import Delivery, FanoutCursor, RunWebhook, Webhook
from webhooks.wire import event_body

logger = logging.getLogger("webhooks.fanout")

CURSOR = "journal"
BATCH = 500


def _wants(webhook: Webhook, entry: Entry) -> bool:
    return (
        entry.type in webhook.events
        and (webhook.owner is None or webhook.owner == entry.owner)
        and webhook.created_at <= entry.at
    )


def deliveries_for(entries: list[Entry]) -> list[Delivery]:
    """The deliveries these entries make, for the active targets that ask for them."""
    webhooks = list(Webhook.objects.filter(active=True).only("id", "events", "owner", "created_at"))
    run_webhooks = {
        hook.run_id: hook
        for hook in RunWebhook.objects.filter(run_id__in={entry.run_id for entry in entries}, active=True)
    }
    made: list[Delivery] = []
    for entry in entries:
        targets: list[dict[str, object]] = [{"webhook": w} for w in webhooks if _wants(w, entry)]
        run_webhook = run_webhooks.get(entry.run_id)
        if run_webhook is not None and entry.type in run_webhook.events:
            targets.append({"run_webhook": run_webhook})
        if not targets:
            continue
        body = event_body(entry.type, entry.at, entry.run)
        for target in targets:
            made.append(
                Delivery(
                    **target,
                    journal_id=entry.id,
                    event_type=entry.type,
                    run_id=entry.run_id,
                    event_at=entry.at,
                    payload=body,
                    next_attempt_at=entry.at,
                )
            )
    return made


def fan_out(limit: int = BATCH) -> int:
    """One step: the entries after the cursor (at most `limit`) become
    deliveries. Returns how many entries it read: 0 when there were none, or
    when another deliverer holds the cursor (it is fanning out)."""
    FanoutCursor.objects.get_or_create(name=CURSOR)
    with transaction.atomic():
        cursor = FanoutCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR).first()
        if cursor is None:
            return 0
        entries = entries_after(cursor.position, limit=limit)
        if not entries:
            return 0
        made = deliveries_for(entries)
        Delivery.objects.bulk_create(made, ignore_conflicts=True)
        cursor.position = entries[-1].id
        cursor.save(update_fields=["position", "updated_at"])
    if made:
        logger.info(
            "deliveries made", extra={"entries": len(entries), "deliveries": len(made), "event": "fanout"}
        )
    return len(entries)
