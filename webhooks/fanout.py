"""Deliveries made from the run journal: which deliveries an entry makes.

`services.fan_out` reads the entries after the stored cursor, makes one
delivery per entry and matching target (subscription or per-run webhook)
with `deliveries_for`, and moves the cursor, in one transaction: journal ids
become visible in increasing order, so reading "after the cursor" never
skips an entry, and a crash leaves both the deliveries and the cursor as
they were. See docs/orchestrator_design.md, "Webhooks".
"""

from __future__ import annotations

from journal.models import Entry
from webhooks import selectors
from webhooks.models import Delivery, Webhook
from webhooks.wire import event_body

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
    webhooks = selectors.active_webhooks()
    run_webhooks = selectors.active_run_webhooks(entry.run_id for entry in entries)
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
