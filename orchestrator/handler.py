"""Django's ASGI handler, reusing the thread each request runs its sync code on."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.http import HttpResponseBase
from django.http.response import ResponseHeaders
from django.urls import ResolverMatch, set_script_prefix
from django.utils.module_loading import import_string

from orchestrator import db_threads
from orchestrator.middleware import auth
from orchestrator.streaming import DirectStreamingResponse, response_headers

MAX_IDLE_EXECUTORS = 64


class RequestThread(ThreadPoolExecutor):
    """The one thread a request's sync code runs on, which knows whether the
    request has given it anything to run."""

    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="request")
        self.used = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.used = True
        return super().submit(fn, *args, **kwargs)


_request_thread: contextvars.ContextVar[RequestThread | None] = contextvars.ContextVar(
    "request_thread", default=None
)


class PooledThreadASGIHandler(ASGIHandler):
    """Django gives every request a fresh one-thread executor for its sync
    code (views, ORM) and joins that thread afterwards: two thread starts per
    request. Reusing idle executors keeps the same per-request isolation
    (one request's sync calls still run one at a time on one thread) at a
    fraction of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[RequestThread] = []
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
        executor = self._idle.pop() if self._idle else RequestThread()
        executor.used = False
        token = _request_thread.set(executor)
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            _request_thread.reset(token)
            if len(self._idle) < MAX_IDLE_EXECUTORS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django 5.2's `ASGIHandler.handle` (5.2.19), but for how the response
        is closed at the end (`close_response`); everything else is the same
        steps through the same public methods.

        Django closes every response on the request's thread, a thread hop
        that cost an eighth of a single append's CPU, and the append's async
        view never uses that thread. `tests/test_asgi_handler.py` fails when
        Django's method changes, so that this copy is looked at again.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected during the send
            return response

        # The disconnect listener first: it raises nothing unexpected that
        # would keep process_request from being cancelled.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()  # a view may handle its cancellation
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await self.close_response(response)
        body_file.close()

    async def close_response(self, response: HttpResponseBase) -> None:
        """Close the response (which sends request_finished) on the event
        loop when nothing of it needs the request's thread; otherwise on that
        thread, as Django does.

        On the loop it must be: a response whose content is already bytes
        (nothing left to close but its source, read whole when it was set),
        of a request whose thread ran nothing (the thread was left clean by
        the request before, so there are no connections of its to close
        there), and request_finished's receivers all ones that do no
        blocking work wherever they run.
        """
        thread = _request_thread.get()
        if thread is None or thread.used or response.streaming or not _finish_is_loop_safe():
            await sync_to_async(response.close)()
        else:
            response.close()

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


def _loop_safe_finish_receivers() -> frozenset[Any]:
    """The ids under which request_finished keys Django's own receivers that
    do no blocking work on the event loop, with this project's settings.

    reset_urlconf sets a context variable. close_old_connections closes the
    connections of the thread it runs on, and the event loop's thread never
    opens one (Django refuses to connect there). close_caches closes the
    caches the request used, which the backends configured here do with
    Django's no-op `BaseCache.close`; a backend with a close of its own
    (memcached's) keeps the hop.
    """
    receivers: list[Callable[..., Any]] = [reset_urlconf, close_old_connections]
    backends = [import_string(cache["BACKEND"]) for cache in settings.CACHES.values()]
    if all(backend.close is BaseCache.close for backend in backends):
        receivers.append(close_caches)
    return frozenset(id(receiver) for receiver in receivers)


_LOOP_SAFE: frozenset[Any] | None = None


def _finish_is_loop_safe() -> bool:
    """Whether every receiver of request_finished is one of those above.
    A receiver connected later (any other) keeps the hop for every request."""
    global _LOOP_SAFE
    if _LOOP_SAFE is None:
        _LOOP_SAFE = _loop_safe_finish_receivers()
    # A receiver is keyed by (id of the receiver or its dispatch_uid, id of the sender).
    return all(key[0] in _LOOP_SAFE for key, _, _ in signals.request_finished.receivers)


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
