"""Short-lived tokens scoped to one run, signed with SECRET_KEY.

A stream token lets a browser open one run's event stream (EventSource
cannot send headers, so it travels as `?token=`); a worker token lets the
worker or pod of one run append its checkpoints and report its status.
Neither opens another run, and neither kind stands in for the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing

STREAM = "stream"
WORKER = "worker"
_SALT = "orchestrator.run-token"


@dataclass(frozen=True)
class RunToken:
    kind: str
    run_id: str
    expires_at: datetime


class InvalidToken(Exception):
    """Tampered, expired, of another kind, or for another run."""


def mint(kind: str, run_id: str, *, ttl_seconds: int | None = None) -> tuple[str, datetime]:
    if ttl_seconds is None:
        ttl_seconds = (
            settings.STREAM_TOKEN_TTL_SECONDS if kind == STREAM else settings.WORKER_TOKEN_TTL_SECONDS
        )
    expires = int(time.time()) + int(ttl_seconds)
    token = signing.dumps({"k": kind, "r": str(run_id), "e": expires}, salt=_SALT, compress=False)
    return token, datetime.fromtimestamp(expires, UTC)


def verify(token: str, *, kind: str, run_id: str) -> RunToken:
    """The token's claims if it is genuine, unexpired, of `kind` and for `run_id`."""
    try:
        claims = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        raise InvalidToken("bad signature") from None
    if not isinstance(claims, dict) or claims.get("k") != kind or claims.get("r") != str(run_id):
        raise InvalidToken("wrong kind or run")
    expires = claims.get("e")
    if not isinstance(expires, int) or expires <= time.time():
        raise InvalidToken("expired")
    return RunToken(kind=kind, run_id=str(run_id), expires_at=datetime.fromtimestamp(expires, UTC))
