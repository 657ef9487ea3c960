"""Requests per window, per credential (else per client address), shared by
every server process through the cache (Redis when REDIS_URL is set).

Runs before the API key check, so refused attempts count against the
caller's address too: guessing keys costs the guesser their budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import ipaddress
import logging
import math
import time
import zlib
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponse
from django_ratelimit import ALL
from django_ratelimit.core import get_usage
from redis import RedisError
from redis.exceptions import NoScriptError

from orchestrator.cache import SharedConnectionPool
from orchestrator.errors import error_response
from orchestrator.futures import PerLoop, answer_each
from orchestrator.middleware import auth
from orchestrator.middleware.base import DualMiddleware

logger = logging.getLogger("orchestrator.ratelimit")

API_GROUP = "orchestrator.api"
WORKER_GROUP = "orchestrator.worker"


def client_address(request: HttpRequest) -> str:
    """The caller's address as the ASGI server saw it (behind a proxy, see FORWARDED_ALLOW_IPS).

    IPv6 callers are grouped by /64, which one host usually holds whole.
    """
    raw = request.META.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return f"addr:{raw[:64] or 'unknown'}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"net:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


def _bucket(group: str, request: HttpRequest) -> str:
    principal = auth.identify(request)
    if principal.fingerprint is not None:
        return f"cred:{principal.fingerprint}"
    return client_address(request)


def _rate(request: HttpRequest) -> tuple[str, int, int] | None:
    """(group, limit, window seconds) for this request, or None when unlimited."""
    window = max(1, math.ceil(settings.RATE_LIMIT_WINDOW_MS / 1000))
    if auth.identify(request).kind == auth.WORKER_TOKEN:
        limit = settings.RATE_LIMIT_WORKER_MAX
        group = WORKER_GROUP
    else:
        limit = settings.RATE_LIMIT_MAX
        group = API_GROUP
    if limit <= 0:
        return None
    return group, limit, window


# One round trip per request: the count and its expiry in one atomic step.
# django-ratelimit's `add` then the cache's `incr` (EXISTS, then INCR) cost
# three, and they were the largest share of a single append's server time.
# Its public API has no single-step count, and Django's RedisCache no public
# way to its client, so this path keeps a client and keys of its own.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
# Seconds a count outlives its window, so a window's last requests still find it.
EXPIRY_MARGIN_SECONDS = 2
_script: Any = None
_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    """A client for the rate-limit cache's Redis (its LOCATION and socket
    timeouts), one per process and location, on the process's shared pool."""
    config = settings.CACHES[settings.RATELIMIT_USE_CACHE]
    location = config["LOCATION"]
    client = _clients.get(location)
    if client is None:
        options = config.get("OPTIONS", {})
        timeouts = {
            name: options[name] for name in ("socket_timeout", "socket_connect_timeout") if name in options
        }
        client = _clients[location] = redis.Redis(
            connection_pool=SharedConnectionPool.from_url(location, **timeouts)
        )
    return client


def _increment(client: redis.Redis, key: str, expires: int) -> int:
    """The count after this request (EVALSHA; the script is sent again after a Redis restart)."""
    return int(_registered(client)(keys=[key], args=[expires], client=client))


def _registered(client: redis.Redis) -> Any:
    global _script
    if _script is None:
        _script = client.register_script(_INCREMENT)  # its digest only: no round trip
    return _script


def _increment_many(client: redis.Redis, counts: list[tuple[str, int]]) -> list[int | Exception]:
    """The count after each (key, expiry), in one round trip: a pipeline of
    EVALSHA, and the script sent again for those a restarted Redis refused."""
    sha = _registered(client).sha
    results: list[Any] = [None] * len(counts)
    todo = list(range(len(counts)))
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for index in todo:
            key, expires = counts[index]
            pipe.evalsha(sha, 1, key, expires)
        for index, result in zip(todo, pipe.execute(raise_on_error=False), strict=True):
            results[index] = result
        todo = [index for index in todo if isinstance(results[index], NoScriptError)]
        if not todo:
            break
        if attempt == 0:
            client.script_load(_INCREMENT)
    return [result if isinstance(result, Exception) else int(result) for result in results]


class _Counts:
    """The counts of one event loop's requests, sent to Redis together.

    A request's count costs a thread hop (the client is sync) and a round
    trip; the requests that reach the limiter in the same turn of the loop
    share both: one hop and one pipeline for all of them, each still
    counted by itself (its own EVALSHA, its own answer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: dict[redis.Redis, list[tuple[str, int, asyncio.Future[int]]]] = {}

    def count(self, client: redis.Redis, key: str, expires: int) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self.loop.create_future()
        if not self._waiting:
            # A context of its own: the batch belongs to no one request.
            self.loop.call_soon(self._flush, context=contextvars.Context())
        self._waiting.setdefault(client, []).append((key, expires, future))
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for client, batch in waiting.items():
            counts = [(key, expires) for key, expires, _ in batch]
            done = self.loop.run_in_executor(None, _increment_many, client, counts)
            done.add_done_callback(functools.partial(_answer, [future for _, _, future in batch]))


def _answer(futures: list[asyncio.Future[int]], done: asyncio.Future[list[int | Exception]]) -> None:
    error = done.exception()
    answer_each(futures, [error] * len(futures) if error is not None else done.result())


_counts = PerLoop(_Counts)


async def _count_together(client: redis.Redis, key: str, expires: int) -> int:
    return await _counts.get().count(client, key, expires)


def window_end(value: str, window: int, now: float) -> int:
    """The end of the fixed window `now` falls in for this caller. Each caller's
    windows are offset by a hash of its bucket, so they do not all reset at once."""
    offset = zlib.crc32(value.encode()) % window
    return int((now - offset) // window * window + offset + window)


def _key(group: str, value: str, limit: int, window: int, ends: int) -> str:
    digest = hashlib.sha256(f"{group}|{value}|{limit}/{window}|{ends}".encode()).hexdigest()[:32]
    return f"rl:{digest}"


def count_request(request: HttpRequest, group: str, limit: int, window: int) -> tuple[int, float] | None:
    """This request counted in its caller's window: (count so far, seconds left), or None
    when the cache is not Redis (one process alone: django-ratelimit's way serves)."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not isinstance(cache, RedisCache):
        usage = get_usage(request, group=group, key=_bucket, rate=(limit, window), method=ALL, increment=True)
        return None if usage is None else (usage["count"], usage["time_left"])
    key, expires, ends, now = _window_key(cache, request, group, limit, window)
    return _increment(_redis(), key, expires), ends - now


async def acount_request(
    request: HttpRequest, group: str, limit: int, window: int
) -> tuple[int, float] | None:
    """`count_request` for an async caller: Redis counts go with the others
    of this moment (`_Counts`), anything else to a thread as before."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not isinstance(cache, RedisCache):
        return await sync_to_async(count_request, thread_sensitive=False)(request, group, limit, window)
    key, expires, ends, now = _window_key(cache, request, group, limit, window)
    return await _count_together(_redis(), key, expires), ends - now


def _window_key(
    cache: RedisCache, request: HttpRequest, group: str, limit: int, window: int
) -> tuple[str, int, int, float]:
    """The Redis key of the caller's current window, its expiry, the window's end and now."""
    value = _bucket(group, request)
    now = time.time()
    ends = window_end(value, window, now)
    key = cache.make_and_validate_key(_key(group, value, limit, window, ends))
    return key, window + EXPIRY_MARGIN_SECONDS, ends, now


def rate_limited(retry_after: int) -> HttpResponse:
    return error_response(
        429,
        "rate_limited",
        "rate_limited",
        {"retryAfter": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


class RateLimitMiddleware(DualMiddleware):
    """429 with Retry-After once a caller has spent its window's budget.

    An event stream is one request, so opening it counts once however many
    events it carries. Probes, scraping and CORS preflight are not counted.

    The count lives in Redis, and the client is sync: under ASGI the counts
    of the requests of one moment go to Redis together from a worker thread
    (`_Counts`), so a slow or unreachable Redis never stalls the event loop
    that carries every open event stream. After a cache failure the
    limiter stands aside for RATE_LIMIT_CACHE_BACKOFF_SECONDS instead of
    paying a connect timeout on every request.
    """

    _cache_down_until = 0.0

    def _rate_for(self, request: HttpRequest) -> tuple[str, int, int] | None:
        if auth.is_open(request) and not request.path_info.startswith(auth.SESSION_PREFIXES):
            return None
        return _rate(request)

    def _check(self, request: HttpRequest, rate: tuple[str, int, int]) -> HttpResponse | None:
        if time.monotonic() < RateLimitMiddleware._cache_down_until:
            return None
        try:
            counted = count_request(request, *rate)
        except (RedisError, OSError) as exc:
            return self._stand_aside(exc)
        return self._verdict(rate, counted)

    async def _acheck(self, request: HttpRequest, rate: tuple[str, int, int]) -> HttpResponse | None:
        if time.monotonic() < RateLimitMiddleware._cache_down_until:
            return None
        try:
            counted = await acount_request(request, *rate)
        except (RedisError, OSError) as exc:
            return self._stand_aside(exc)
        return self._verdict(rate, counted)

    def _stand_aside(self, exc: Exception) -> None:
        # The limiter protects the service; it must not take it down with the cache.
        if time.monotonic() < RateLimitMiddleware._cache_down_until:
            return None  # already said, by another request of the same failed batch
        backoff = settings.RATE_LIMIT_CACHE_BACKOFF_SECONDS
        RateLimitMiddleware._cache_down_until = time.monotonic() + backoff
        logger.warning(
            "rate limit cache unavailable; requests allowed",
            extra={"event": "ratelimit_unavailable", "errorType": type(exc).__name__},
        )
        return None

    def _verdict(self, rate: tuple[str, int, int], counted: tuple[int, float] | None) -> HttpResponse | None:
        group, limit, window = rate
        if counted is None or counted[0] <= limit:
            return None
        retry_after = max(1, int(counted[1]))
        logger.info(
            "request rate limited",
            extra={"event": "rate_limited", "group": group, "limit": limit, "windowSeconds": window},
        )
        return rate_limited(retry_after)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        rate = self._rate_for(request)
        return None if rate is None else self._check(request, rate)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        rate = self._rate_for(request)
        early = None if rate is None else await self._acheck(request, rate)
        if early is not None:
            return self.after(request, early)
        return self.after(request, await self.get_response(request))
