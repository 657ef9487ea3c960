"""A streaming response that writes itself straight to the ASGI server.

Django's ASGI handler sends a streaming response by iterating it: each chunk
passes through two async generators of Django's (`__aiter__` and the
`streaming_content` wrapper), then is cut to its chunk size. For thousands of
long-lived streams each written many times a second that is a large part of
the work. `DirectStreamingResponse` is an ordinary response to everything
before the send (middleware, signals, the access log, headers added on the
way out), and `orchestrator.handler` lets it write its own body with the
server's `send`. A middleware that replaces its content turns that off, and
the response is then sent the usual way, from its `streaming_content`.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from django.http import StreamingHttpResponse

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class DirectStreamingResponse(StreamingHttpResponse):
    """Subclasses write their body in `write_body(send)`, and yield the same
    bytes from `iterate()` for servers that iterate the response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_Deferred(weakref.ref(self)), *args, **kwargs)
        self.direct = True

    @property
    def streaming_content(self) -> Any:
        return StreamingHttpResponse.streaming_content.fget(self)

    @streaming_content.setter
    def streaming_content(self, value: Any) -> None:
        # Whoever sets the content (a middleware wrapping it) expects it to be sent.
        self.direct = False
        StreamingHttpResponse.streaming_content.fset(self, value)

    async def write_body(self, send: Send) -> None:
        raise NotImplementedError

    def iterate(self) -> AsyncIterator[bytes]:
        raise NotImplementedError


class _Deferred:
    """The response's content as an async iterator, made only if someone iterates."""

    # A weak reference: the response holds this, and a cycle would outlive
    # the request until the garbage collector's next full pass.
    def __init__(self, response: weakref.ref[DirectStreamingResponse]) -> None:
        self.response = response
        self.iterator: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> _Deferred:
        return self

    async def __anext__(self) -> bytes:
        if self.iterator is None:
            response = self.response()
            if response is None:
                raise StopAsyncIteration
            self.iterator = response.iterate()
        return await self.iterator.__anext__()


def response_headers(response: StreamingHttpResponse) -> list[tuple[bytes, bytes]]:
    """The response's headers and cookies as ASGI wants them (as Django's
    handler encodes them)."""
    headers = []
    for header, value in response.items():
        headers.append((header.encode("ascii"), value.encode("latin1")))
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers
