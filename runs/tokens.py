"""Short-lived tokens scoped to one run, or to the run list, signed with SECRET_KEY.

A stream token lets a browser open one run's event stream (EventSource
cannot send headers, so it travels as `?token=`); a worker token lets the
worker or pod of one run append its checkpoints and report its status.
A list stream token opens the live run list (`GET /runs/events`) only,
limited to the owner of the credential that minted it, if that credential
is limited to one. No token opens another run, and no kind stands in for
another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing

STREAM = "stream"
WORKER = "worker"
# The live run list (GET /runs/events): no run, maybe an owner it is limited to.
LIST_STREAM = "list-stream"
KINDS = (STREAM, WORKER, LIST_STREAM)
_SALT = "orchestrator.run-token"
# Genuine tokens are ~150 characters; anything far longer is not worth a signature check.
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class RunToken:
    kind: str
    run_id: str
    expires_at: datetime
    # The only owner whose runs the token shows (a tenant's); None: any.
    owner: str | None = None

    @property
    def expired(self) -> bool:
        return self.expires_at.timestamp() <= time.time()


class InvalidToken(Exception):
    """Tampered, expired, of another kind, or for another run.

    `reason` is one of "bad_signature", "wrong_scope", "expired", for the
    caller to choose its answer; the message never contains the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason.replace("_", " "))
        self.reason = reason


def mint(
    kind: str, run_id: str, *, ttl_seconds: int | None = None, owner: str | None = None
) -> tuple[str, datetime]:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    if ttl_seconds is None:
        ttl_seconds = (
            settings.WORKER_TOKEN_TTL_SECONDS if kind == WORKER else settings.STREAM_TOKEN_TTL_SECONDS
        )
    expires = int(time.time()) + int(ttl_seconds)
    claims: dict[str, Any] = {"k": kind, "r": str(run_id), "e": expires}
    if owner is not None:
        claims["o"] = owner
    token = signing.dumps(claims, salt=_SALT, compress=False)
    return token, datetime.fromtimestamp(expires, UTC)


def read(token: str) -> RunToken:
    """The claims of a genuine token, whatever its kind, run or expiry.

    Raises InvalidToken("bad_signature") for anything we did not sign.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("bad_signature")
    try:
        claims = signing.loads(token, salt=_SALT)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise InvalidToken("bad_signature") from None
    if (
        not isinstance(claims, dict)
        or claims.get("k") not in KINDS
        or not isinstance(claims.get("r"), str)
        or not isinstance(claims.get("e"), int)
        or not isinstance(claims.get("o", ""), str)
    ):
        raise InvalidToken("bad_signature")
    return RunToken(
        kind=claims["k"],
        run_id=claims["r"],
        expires_at=datetime.fromtimestamp(claims["e"], UTC),
        owner=claims.get("o"),
    )


def verify(token: str, *, kind: str, run_id: str) -> RunToken:
    """The token's claims if it is genuine, unexpired, of `kind` and for `run_id`."""
    claims = read(token)
    if claims.kind != kind or claims.run_id != str(run_id):
        raise InvalidToken("wrong_scope")
    if claims.expired:
        raise InvalidToken("expired")
    return claims
