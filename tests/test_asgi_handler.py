"""The ASGI handler: a request announced, resolved and closed with no more
thread hops than the request needs, and Django's guarantees kept."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, reset_queries
from django.http import HttpResponseBase
from django.urls.resolvers import URLResolver

from orchestrator.handler import PooledThreadASGIHandler
from orchestrator.middleware.request import new_request_id

# Django 5.2's ASGIHandler.handle, which PooledThreadASGIHandler.handle copies.
MIRRORED_HANDLE_SHA256 = "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323"


@pytest.fixture
def request_started_receivers() -> Iterator[None]:
    """The handler changes a process-wide signal; put Django's receivers back afterwards."""
    yield
    signals.request_started.connect(reset_queries)
    signals.request_started.connect(close_old_connections)


def test_outside_debug_nothing_listens_to_request_started(settings, request_started_receivers):
    settings.DEBUG = False

    PooledThreadASGIHandler()

    # With no receiver, Django's handler announces a request without a hop to a thread.
    assert not signals.request_started.has_listeners(PooledThreadASGIHandler)


def test_under_debug_djangos_receivers_stay(settings, request_started_receivers):
    settings.DEBUG = True

    PooledThreadASGIHandler()

    assert signals.request_started.has_listeners(PooledThreadASGIHandler)


def test_the_copied_handle_is_djangos_of_the_version_it_mirrors():
    source = inspect.getsource(ASGIHandler.handle)

    # When this fails, Django's handle changed: bring the copy in
    # orchestrator/handler.py up to date, then the hash here.
    assert hashlib.sha256(source.encode()).hexdigest() == MIRRORED_HANDLE_SHA256


def _serve(handler: PooledThreadASGIHandler, method: str, path: str) -> list[dict[str, Any]]:
    """One request through the handler in this process, as an ASGI server makes it."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        body_read = False
        disconnected = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal body_read
            if not body_read:
                body_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await handler(scope, receive, send)

    asyncio.run(main())
    return sent


@pytest.fixture
def closes(monkeypatch) -> list[str]:
    """The name of the thread each response is closed on (the close itself, and
    the request_finished it sends, still run)."""
    names: list[str] = []
    close = HttpResponseBase.close

    def recording_close(response: HttpResponseBase) -> None:
        names.append(threading.current_thread().name)
        close(response)

    monkeypatch.setattr(HttpResponseBase, "close", recording_close)
    return names


@pytest.fixture
def handler(settings, request_started_receivers) -> PooledThreadASGIHandler:
    settings.DEBUG = False
    settings.ORCHESTRATOR_API_KEYS = ["a-key-for-the-handler-tests-0123456789"]
    return PooledThreadASGIHandler()


def test_a_request_that_never_used_its_thread_is_closed_on_the_event_loop(handler, closes):
    # Refused by the async middleware: nothing ran on the request's thread.
    sent = _serve(handler, "GET", "/runs")

    assert sent[0]["status"] == 401
    assert closes == [threading.current_thread().name]


def test_a_sync_views_response_is_closed_on_the_thread_the_view_ran_on(handler, closes):
    # A sync view's connections belong to its thread: request_finished must close them there.
    sent = _serve(handler, "GET", "/health")

    assert sent[0]["status"] == 200
    assert len(closes) == 1 and closes[0].startswith("request")


def test_a_receiver_of_request_finished_the_handler_does_not_know_runs_on_the_requests_thread(handler):
    ran_on: list[str] = []

    def receiver(**kwargs: Any) -> None:
        ran_on.append(threading.current_thread().name)

    signals.request_finished.connect(receiver)
    try:
        sent = _serve(handler, "GET", "/runs")
    finally:
        signals.request_finished.disconnect(receiver)

    assert sent[0]["status"] == 401
    assert len(ran_on) == 1 and ran_on[0].startswith("request")


def test_djangos_handler_takes_over_the_match_of_the_key_check(handler, monkeypatch):
    resolved: list[str] = []
    resolve = URLResolver.resolve

    def counting_resolve(resolver: URLResolver, path: str) -> Any:
        if resolver.pattern.regex.pattern in ("^/", ""):  # the root resolver, not the nested ones
            resolved.append(path)
        return resolve(resolver, path)

    monkeypatch.setattr(URLResolver, "resolve", counting_resolve)

    sent = _serve(handler, "GET", "/health")

    assert sent[0]["status"] == 200
    assert resolved == ["/health"]


def test_an_append_is_resolved_after_trying_only_the_event_streams_route():
    from django.urls import resolve

    match = resolve("/runs/3f2c0000-0000-4000-8000-000000000000/checkpoints")

    assert match.url_name == "run-checkpoints"
    assert [str(tried[0].pattern) for tried in match.tried] == ["runs/<str:run_id>/events", ""]


def test_minted_request_ids_are_128_bits_of_hex_and_differ_in_a_forked_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id after the fork
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    parent = new_request_id()
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)

    # Without a fresh seed in the child, both would draw the same next id.
    assert child != parent
    for minted in (parent, child):
        assert len(minted) == 32 and int(minted, 16) >= 0
    assert len({new_request_id() for _ in range(1000)}) == 1000


# That request_finished still gives each request's connections back over a
# real server is what tests/test_append_over_http.py checks with a pool of
# two connections.
