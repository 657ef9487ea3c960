"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the
`webhook-id`, `webhook-timestamp` and `webhook-signature` headers, signed by
the `standardwebhooks` package, so receivers verify with any of its ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook as Signer

USER_AGENT = "Orchestrator-Webhooks/1"


def signed_headers(message_id: str, body: str, secrets: Sequence[str], at: datetime) -> dict[str, str]:
    """The headers of one attempt: the same id on every attempt, a fresh timestamp.

    Each secret adds a signature, space-separated as the specification allows,
    so a receiver that knows any one of them verifies: that is how a rotation
    overlaps. The current secret comes first.
    """
    if isinstance(secrets, str) or not secrets:
        raise ValueError("a delivery needs at least one secret to sign with")
    at = at.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": " ".join(Signer(secret).sign(message_id, at, body) for secret in secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
