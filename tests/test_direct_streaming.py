"""A response that writes its own body to the ASGI server, and the way back
to Django's own sending when a middleware replaces its content."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.handler import PooledThreadASGIHandler
from orchestrator.streaming import DirectStreamingResponse, Send


class Counting(DirectStreamingResponse):
    def __init__(self) -> None:
        super().__init__(content_type="text/plain", headers={"X-Kind": "counting"})
        self.written_by: str | None = None

    async def write_body(self, send: Send) -> None:
        self.written_by = "write_body"
        for part in (b"one ", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})

    async def iterate(self) -> AsyncIterator[bytes]:
        self.written_by = "iterate"
        for part in (b"one ", b"two"):
            yield part


def _send_through_handler(response: DirectStreamingResponse) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(PooledThreadASGIHandler().send_response(response, send))
    return sent


def _body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(message.get("body", b"") for message in sent[1:])


def test_the_handler_lets_the_response_write_its_own_body_after_its_headers():
    response = Counting()

    sent = _send_through_handler(response)

    assert response.written_by == "write_body"
    assert sent[0]["type"] == "http.response.start"
    assert (b"X-Kind", b"counting") in sent[0]["headers"]
    assert _body(sent) == b"one two"
    assert sent[-1] == {"type": "http.response.body"}


def test_content_replaced_by_a_middleware_is_sent_the_usual_way():
    response = Counting()

    async def upper(parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for part in parts:
            yield part.upper()

    response.streaming_content = upper(response.streaming_content)
    sent = _send_through_handler(response)

    assert response.direct is False
    assert response.written_by == "iterate"
    assert _body(sent) == b"ONE TWO"
