"""Body limits enforced at the ASGI edge, before Django reads a byte.

Django's ASGI handler receives the whole body (spooling it to a temporary
file) before any middleware runs, so a middleware 413 comes too late to save
memory or disk. Here a declared oversized body is refused at once, and a
chunked body is counted as it arrives and refused past the limit. A chunked
body within the limit is handed on with its Content-Length, which Django and
DRF need to read it at all.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


async def _error(scope: Scope, send: Send, status: int, message: str, code: str, details: dict) -> None:
    incoming = _header(scope, b"x-request-id") or b""
    request_id = incoming.decode() if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    body = json.dumps({"error": message, "code": code, "details": details, "requestId": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 for bodies over MAX_BODY_BYTES, declared or chunked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.MAX_BODY_BYTES
        too_large = ("request body too large", "body_too_large", {"maxBytes": limit})
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _error(scope, send, 400, "invalid Content-Length header", "bad_request", {})
                return
            if length > limit:
                await _error(scope, send, 413, *too_large)
                return
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        total = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > limit:
                await _error(scope, send, 413, *too_large)
                return
            if not message.get("more_body", False):
                break
        headers = [
            (key, value)
            for key, value in scope.get("headers", [])
            if key.lower() not in (b"transfer-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(total).encode()))
        body = b"".join(m.get("body", b"") for m in buffered if m["type"] == "http.request")
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        replay += [m for m in buffered if m["type"] != "http.request"]

        async def replaying_receive() -> Message:
            # After the body, the app still listens here for the disconnect.
            return replay.pop(0) if replay else await receive()

        await self.app({**scope, "headers": headers}, replaying_receive, send)
