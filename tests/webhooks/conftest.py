"""Webhook fixtures: a real receiver on 127.0.0.1, and private networks allowed
(the receiver is on loopback) in this process and the processes tests start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import setting_everywhere
from tests.webhooks.receiver import Receiver
from webhooks import secrets, wire
from webhooks.models import Delivery, Webhook

SERVER_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64, tests only


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().serving() as running:
        yield running


@pytest.fixture
def private_networks() -> Iterator[None]:
    with setting_everywhere("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"):
        yield


@pytest.fixture
def server_secret() -> Iterator[str]:
    with setting_everywhere("WEBHOOK_SECRET", SERVER_SECRET):
        yield SERVER_SECRET


def make_webhook(url: str, secret: str | None = None, **fields: Any) -> tuple[Webhook, str]:
    secret = secret or secrets.generate()
    webhook = Webhook.objects.create(
        url=url,
        events=fields.pop("events", ["run.completed"]),
        secret_encrypted=secrets.encrypt(secret),
        **fields,
    )
    return webhook, secret


def make_delivery(
    webhook: Webhook, *, journal_id: int = 1, event_type: str = "run.completed", **fields: Any
) -> Delivery:
    """A due delivery, as the fan-out makes them."""
    import uuid

    from django.utils import timezone

    run_id = fields.pop("run_id", uuid.uuid4())
    now = timezone.now()
    run = {"id": str(run_id), "mode": "redis", "status": "completed", "createdAt": wire.format_ts(now)}
    return Delivery.objects.create(
        webhook=webhook,
        journal_id=journal_id,
        event_type=event_type,
        run_id=run_id,
        payload=wire.event_body(event_type, now, run),
        next_attempt_at=now,
        event_at=now,
        **fields,
    )
