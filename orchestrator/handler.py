"""Django's ASGI handler, reusing the thread each request runs its sync code on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, reset_queries
from django.http.response import ResponseHeaders
from django.urls import ResolverMatch

from orchestrator import db_threads
from orchestrator.middleware import auth
from orchestrator.streaming import DirectStreamingResponse, response_headers

MAX_IDLE_EXECUTORS = 64


class PooledThreadASGIHandler(ASGIHandler):
    """Django gives every request a fresh one-thread executor for its sync
    code (views, ORM) and joins that thread afterwards: two thread starts per
    request. Reusing idle executors keeps the same per-request isolation
    (one request's sync calls still run one at a time on one thread) at a
    fraction of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []
        # Every event stream's sync work (Django's request_finished, a DEBUG
        # request_started) runs on this one thread, one call at a time. A
        # stream lasts hours: an executor of its own would park a thread for
        # each open stream, which measurably slows every other request of the
        # process, while a stream's sync calls are few and short.
        self._streams = ThreadPoolExecutor(1, thread_name_prefix="streams")
        if not settings.DEBUG:
            _skip_request_started_hop()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        db_threads.served_by_asgi_server.set(True)
        if scope["path"].endswith("/events"):
            async with ThreadSensitiveContext(executor=self._streams):
                await self.handle(scope, receive, send)
            return
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < MAX_IDLE_EXECUTORS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    def resolve_request(self, request: Any) -> ResolverMatch:
        """The match the key check already found for this path (every request
        asks it which endpoint it calls), instead of resolving the path a
        second time. It came from the root URLconf, so a request given a
        URLconf of its own is resolved again, as Django does."""
        match = auth.take_match(request)
        if match is None or hasattr(request, "urlconf"):
            return super().resolve_request(request)
        request.resolver_match = match
        return match

    async def send_response(self, response: Any, send: Any) -> None:
        """A `DirectStreamingResponse` writes its own body to the server;
        every other response goes out as Django sends it."""
        if not (isinstance(response, DirectStreamingResponse) and response.direct):
            await super().send_response(response, send)
            return
        # The headers in no local of this frame, which lasts as long as the
        # stream; and, once sent, not in the response either (every middleware
        # has seen them, and a stream may last hours).
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers(response),
            }
        )
        response.headers = ResponseHeaders({})
        await response.write_body(send)
        await send({"type": "http.response.body"})


def _skip_request_started_hop() -> None:
    """Leave request_started without receivers, so that Django's handler does
    not hop to the request's thread to send it (a tenth of the CPU an append
    costs).

    Its two receivers have nothing to do here. close_old_connections: the
    thread a request runs its sync code on was left clean by the
    request_finished of the request before, which closes that thread's
    connections. reset_queries: queries are only recorded under DEBUG, where
    this is not done.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_started.disconnect(reset_queries)
