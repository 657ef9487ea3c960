"""Blocking database work for async views, off the event loop.

Django's `sync_to_async` sends such work to the request's own thread, which
is right wherever a sync caller above the view owns that thread and its
transaction (the test client, a WSGI server). Under the ASGI server nothing
does, and the hop through asgiref costs about twice a plain executor hop on
the ingest hot path. So requests that the ASGI handler marks run their
database work on a few dedicated threads, each giving its connection back to
the pool after every call; everything else keeps `sync_to_async`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

T = TypeVar("T")

THREADS = 4

served_by_asgi_server: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "served_by_asgi_server", default=False
)

_executor: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(THREADS, thread_name_prefix="db")
    return _executor


def _call_and_release(call: Callable[[], T]) -> T:
    try:
        return call()
    finally:
        connection.close()  # back to the pool: these threads hold nothing between calls


async def run(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` on a thread that may use the database."""
    if not served_by_asgi_server.get():
        return await sync_to_async(func)(*args)
    return await on_threads(func, *args)


async def on_threads(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` on one of the dedicated threads, wherever the caller runs."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args)  # keeps the request id for logs
    return await loop.run_in_executor(_threads(), _call_and_release, call)
