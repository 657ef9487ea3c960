"""The admin dashboard's "Webhook backlog" panel."""

from __future__ import annotations

from django.db.models import Min
from django.db.models.functions import Now
from django.utils import timezone

from runs.dashboard_panels import Panel, Row
from webhooks.models import Delivery


def backlog() -> Panel:
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    age = f"{(timezone.now() - oldest).total_seconds():.0f} s" if oldest else "-"
    rows = [
        Row("due now", str(pending.filter(next_attempt_at__lte=Now()).count())),
        Row("pending (due now or retrying later)", str(pending.count())),
        Row("oldest pending", age),
    ]
    return Panel(key="webhooks", title="Webhook backlog", rows=rows)
