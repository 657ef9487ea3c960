"""Body limits enforced at the ASGI edge, before Django reads a byte.

Django's ASGI handler receives the whole body (spooling it to a temporary
file) before any middleware runs, so a middleware cannot save memory or disk
by itself. Here a declared oversized body is refused before a byte of it is
read, and a chunked body is counted as it arrives and refused past the limit.
A refused request goes on to Django without its body, marked in its scope,
and `BodySizeLimitMiddleware` answers it: so the 413 carries what every
answer carries (CORS headers a browser needs to read it, the request id, an
access-log line, metrics). A chunked body within the limit is handed on with
its Content-Length, which Django and DRF need to read it at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from orchestrator.errors import error_response
from orchestrator.middleware.base import DualMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Where a refusal waits for BodySizeLimitMiddleware: (status, message, code, details).
REFUSED = "orchestrator.refused"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


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
                await self._refuse(
                    scope, receive, send, (400, "invalid Content-Length header", "bad_request", {})
                )
                return
            if length > limit:
                await self._refuse(scope, receive, send, (413, *too_large))
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
                await self._refuse(scope, receive, send, (413, *too_large))
                return
            if not message.get("more_body", False):
                break
        headers = _with_length(scope, total)
        body = b"".join(m.get("body", b"") for m in buffered if m["type"] == "http.request")
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        replay += [m for m in buffered if m["type"] != "http.request"]

        async def replaying_receive() -> Message:
            # After the body, the app still listens here for the disconnect.
            return replay.pop(0) if replay else await receive()

        await self.app({**scope, "headers": headers}, replaying_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: tuple[Any, ...]) -> None:
        """Hand the request to Django with an empty body, for it to answer `refusal`."""
        started = False

        async def empty_body_then_disconnect() -> Message:
            nonlocal started
            if not started:
                started = True
                return {"type": "http.request", "body": b"", "more_body": False}
            while True:
                # Django listens here for the client going away; what is
                # left of the refused body is read and dropped meanwhile.
                message = await receive()
                if message["type"] != "http.request":
                    return message

        async def send_and_close(message: Message) -> None:
            # Whoever answers (this refusal, or a 401 or 429 before it): the
            # body was never read whole, so the connection cannot carry another request.
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        refused_scope = {**scope, "headers": _with_length(scope, 0), REFUSED: refusal}
        await self.app(refused_scope, empty_body_then_disconnect, send_and_close)


def _with_length(scope: Scope, length: int) -> list[tuple[bytes, bytes]]:
    headers = [
        (key, value)
        for key, value in scope.get("headers", [])
        if key.lower() not in (b"transfer-encoding", b"content-length")
    ]
    headers.append((b"content-length", str(length).encode()))
    return headers


class BodySizeLimitMiddleware(DualMiddleware):
    """Refuse a declared oversized body with 413 before anything reads it.

    Under ASGI the edge guard (`BodyLimit` above) has
    already refused it without reading it, and left the answer to give here.
    Bodies without a Content-Length are still bounded: Django raises
    RequestDataTooBig past DATA_UPLOAD_MAX_MEMORY_SIZE, which the API error
    handler maps to the same 413.
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        refusal = getattr(request, "scope", {}).get(REFUSED)
        if refusal is not None:
            status, message, code, details = refusal
            return error_response(status, message, code, details)
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "invalid Content-Length header", "bad_request")
        if length > settings.MAX_BODY_BYTES:
            return error_response(
                413,
                "request body too large",
                "body_too_large",
                {"maxBytes": settings.MAX_BODY_BYTES},
            )
        return None
