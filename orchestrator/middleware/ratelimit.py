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


# The window's count is handed out in shares (leases): a process takes a
# block of counts in one step and spends them on its own requests without
# another round trip. The script never counts past the limit, so what every
# process holds together is at most the limit: no process can admit a request
# beyond it. Refused requests are not counted (they would be refused anyway,
# the window's budget being spent). django-ratelimit's public API has no such
# step, and Django's RedisCache no public way to its client, so this path
# keeps a client and keys of its own.
_GRANT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - count)
if granted <= 0 then return {0, count} end
count = redis.call('INCRBY', KEYS[1], granted)
if count == granted then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {granted, count}
"""
# Seconds a count outlives its window, so a window's last requests still find it.
EXPIRY_MARGIN_SECONDS = 2
# A lease is at most this many counts, and at most 1/LEASE_SHARE of what the
# window had left at this process's previous grant. A refusal can then
# happen while another process still holds unspent counts of that window,
# at most one lease each: what remains when the window nears its limit is
# handed out in ever smaller shares, and with fewer than 2 x LEASE_SHARE
# left a process asks only for the requests waiting, one count each.
LEASE_MAX = 32
LEASE_SHARE = 16
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


def _registered(client: redis.Redis) -> Any:
    global _script
    if _script is None:
        _script = client.register_script(_GRANT)  # its digest only: no round trip
    return _script


def _grant(client: redis.Redis, key: str, expires: int, wanted: int, limit: int) -> tuple[int, int]:
    """(counts granted, the window's count after them): EVALSHA, the script
    sent again after a Redis restart."""
    granted, count = _registered(client)(keys=[key], args=[expires, wanted, limit], client=client)
    return int(granted), int(count)


def _grant_many(
    client: redis.Redis, asks: list[tuple[str, int, int, int]]
) -> list[tuple[int, int] | Exception]:
    """`_grant` for each (key, expiry, wanted, limit), in one round trip: a
    pipeline of EVALSHA, and the script sent again for those a restarted
    Redis refused."""
    sha = _registered(client).sha
    results: list[Any] = [None] * len(asks)
    todo = list(range(len(asks)))
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for index in todo:
            key, *args = asks[index]
            pipe.evalsha(sha, 1, key, *args)
        for index, result in zip(todo, pipe.execute(raise_on_error=False), strict=True):
            results[index] = result
        todo = [index for index in todo if isinstance(results[index], NoScriptError)]
        if not todo:
            break
        if attempt == 0:
            client.script_load(_GRANT)
    return [
        result if isinstance(result, Exception) else (int(result[0]), int(result[1])) for result in results
    ]


class _Lease:
    """This process's share of one caller's window: counts `next` to `last`
    are its own to hand out. `count` is the window's count at its previous
    grant (None before the first), `waiting` the requests that found the
    share spent, `asking` whether a grant is on its way."""

    __slots__ = ("asking", "count", "ends", "last", "next", "waiting")

    def __init__(self, ends: int) -> None:
        self.ends = ends
        self.next, self.last = 1, 0
        self.count: int | None = None
        self.waiting: list[asyncio.Future[int]] = []
        self.asking = False

    def wanted(self, limit: int) -> int:
        # The first grant of a window is for the waiting requests alone: a
        # caller seen once in a window leaves nothing unspent.
        share = 0 if self.count is None else min(LEASE_MAX, (limit - self.count) // LEASE_SHARE)
        return max(len(self.waiting), share, 1)


class _Leases:
    """One event loop's leases, and the grants it asks for together.

    A request spends a count of its caller's lease, on the loop, without a
    thread hop or a round trip. Requests that find it spent wait for the next
    grant; the grants asked for in the same turn of the loop share one hop
    (the client is sync) and one pipeline."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._leases: dict[str, _Lease] = {}
        self._asking: dict[redis.Redis, list[tuple[str, int, int, _Lease]]] = {}
        self._sweep_at = 0.0

    def take(
        self, client: redis.Redis, key: str, expires: int, limit: int, ends: int, now: float
    ) -> int | asyncio.Future[int]:
        """This request's place in its window's count (over `limit`: refused),
        or a future of it when a grant must be asked for first."""
        lease = self._leases.get(key)
        if lease is None:
            if now >= self._sweep_at:
                self._sweep(now)
            lease = self._leases[key] = _Lease(ends)
        if lease.next <= lease.last:
            lease.next += 1
            return lease.next - 1
        if lease.count is not None and lease.count >= limit:
            return limit + 1  # every count of the window is granted; none come back
        future: asyncio.Future[int] = self.loop.create_future()
        lease.waiting.append(future)
        if not lease.asking:
            self._ask(client, key, expires, limit, lease)
        return future

    def _sweep(self, now: float) -> None:
        # Leases of windows gone by; a sweep a second at most, when a new one is made.
        self._sweep_at = now + 1
        for key in [key for key, lease in self._leases.items() if lease.ends <= now and not lease.asking]:
            del self._leases[key]

    def _ask(self, client: redis.Redis, key: str, expires: int, limit: int, lease: _Lease) -> None:
        lease.asking = True
        if not self._asking:
            # A context of its own: the grants belong to no one request.
            self.loop.call_soon(self._flush, context=contextvars.Context())
        self._asking.setdefault(client, []).append((key, expires, limit, lease))

    def _flush(self) -> None:
        asking, self._asking = self._asking, {}
        for client, batch in asking.items():
            # Sized now, when the turn's requests have all come.
            asks = [(key, expires, lease.wanted(limit), limit) for key, expires, limit, lease in batch]
            done = self.loop.run_in_executor(None, _grant_many, client, asks)
            done.add_done_callback(functools.partial(self._granted, client, batch))

    def _granted(
        self,
        client: redis.Redis,
        batch: list[tuple[str, int, int, _Lease]],
        done: asyncio.Future[list[tuple[int, int] | Exception]],
    ) -> None:
        error = done.exception()
        outcomes = [error] * len(batch) if error is not None else done.result()
        for (key, expires, limit, lease), outcome in zip(batch, outcomes, strict=True):
            lease.asking = False
            waiting = [future for future in lease.waiting if not future.done()]
            lease.waiting = []
            if isinstance(outcome, BaseException):
                answer_each(waiting, [outcome] * len(waiting))
                continue
            granted, count = outcome
            lease.count = count
            first = count - granted + 1
            served = min(granted, len(waiting))
            answer_each(waiting[:served], range(first, first + served))
            lease.next, lease.last = first + served, count
            rest = waiting[served:]
            if not rest:
                continue
            if count >= limit:
                answer_each(rest, [limit + 1] * len(rest))
            else:  # came while the grant was on its way
                lease.waiting = rest
                self._ask(client, key, expires, limit, lease)


_leases = PerLoop(_Leases)


def window_end(value: str, window: int, now: float) -> int:
    """The end of the fixed window `now` falls in for this caller. Each caller's
    windows are offset by a hash of its bucket, so they do not all reset at once."""
    offset = zlib.crc32(value.encode()) % window
    return int((now - offset) // window * window + offset + window)


def _key(group: str, value: str, limit: int, window: int, ends: int) -> str:
    digest = hashlib.sha256(f"{group}|{value}|{limit}/{window}|{ends}".encode()).hexdigest()[:32]
    return f"rl:{digest}"


def count_request(request: HttpRequest, group: str, limit: int, window: int) -> tuple[int, float] | None:
    """This request's place in its caller's window count (over `limit`: refused)
    and the seconds left, or None when the cache is not Redis (one process
    alone: django-ratelimit's way serves)."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not isinstance(cache, RedisCache):
        usage = get_usage(request, group=group, key=_bucket, rate=(limit, window), method=ALL, increment=True)
        return None if usage is None else (usage["count"], usage["time_left"])
    key, expires, ends, now = _window_key(cache, request, group, limit, window)
    granted, count = _grant(_redis(), key, expires, 1, limit)
    return count + 1 - granted, ends - now


async def acount_request(
    request: HttpRequest, group: str, limit: int, window: int
) -> tuple[int, float] | None:
    """`count_request` for an async caller: from this process's lease of the
    window's count (`_Leases`), anything else to a thread as before."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not isinstance(cache, RedisCache):
        return await sync_to_async(count_request, thread_sensitive=False)(request, group, limit, window)
    key, expires, ends, now = _window_key(cache, request, group, limit, window)
    place = _leases.get().take(_redis(), key, expires, limit, ends, now)
    if isinstance(place, asyncio.Future):
        place = await place
    return place, ends - now


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

    The count lives in Redis, and the client is sync: under ASGI a request
    spends a count of its process's lease of the window (`_Leases`), and the
    grants asked for at one moment go to Redis together from a worker
    thread, so a slow or unreachable Redis never stalls the event loop that
    carries every open event stream. After a cache failure the
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
