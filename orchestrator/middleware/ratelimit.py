"""Requests per window, per credential (else per client address), shared by
every server process through the cache (Redis when REDIS_URL is set).

Runs before the API key check, so refused attempts count against the
caller's address too: guessing keys costs the guesser their budget.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit import ALL
from django_ratelimit.core import get_usage
from redis import RedisError

from orchestrator.errors import error_response
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

    The count lives in Redis, and the client is sync: under ASGI the check runs
    on a worker thread, so a slow or unreachable Redis never stalls the event
    loop that carries every open event stream. After a cache failure the
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
        group, limit, window = rate
        try:
            usage = get_usage(
                request, group=group, key=_bucket, rate=(limit, window), method=ALL, increment=True
            )
        except (RedisError, OSError) as exc:
            # The limiter protects the service; it must not take it down with the cache.
            backoff = settings.RATE_LIMIT_CACHE_BACKOFF_SECONDS
            RateLimitMiddleware._cache_down_until = time.monotonic() + backoff
            logger.warning(
                "rate limit cache unavailable; requests allowed",
                extra={"event": "ratelimit_unavailable", "errorType": type(exc).__name__},
            )
            return None
        if usage is None or not usage["should_limit"]:
            return None
        retry_after = max(1, int(usage["time_left"]))
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
        early = None
        if rate is not None:
            early = await sync_to_async(self._check, thread_sensitive=False)(request, rate)
        if early is not None:
            return self.after(request, early)
        return self.after(request, await self.get_response(request))  # type: ignore[misc]
