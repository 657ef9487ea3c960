"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the
`webhook-id`, `webhook-timestamp` and `webhook-signature` headers, signed by
the `standardwebhooks` package, so receivers verify with any of its ports."""

from __future__ import annotations

from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook as Signer

USER_AGENT = "Orchestrator-Webhooks/1"


def signed_headers(message_id: str, body: str, secret: str, at: datetime) -> dict[str, str]:
    """The headers of one attempt: the same id on every attempt, a fresh timestamp."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": Signer(secret).sign(message_id, at, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
