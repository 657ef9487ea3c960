"""One access log line and one latency observation per request.

Only the path is logged, never the query string: a stream token travels
there. The latency metric is labelled by URL pattern (`/runs/{run_id}`),
never the raw path, so a client cannot grow the number of series.
"""

from __future__ import annotations

import logging
import re
import time

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import Histogram

from orchestrator.middleware import auth
from orchestrator.middleware.base import DualMiddleware

logger = logging.getLogger("orchestrator.access")

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request to response start, by method, URL pattern and status",
    ["method", "route", "status_code"],
)

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
UNMATCHED = "unmatched"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that serves this path, like `/runs/{run_id}`."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    route = match.route or ""
    return "/" + _CONVERTER.sub(r"{\1}", route).lstrip("^").rstrip("$")


def method_label(request: HttpRequest) -> str:
    method = (request.method or "").upper()
    return method if method in _KNOWN_METHODS else "OTHER"


class AccessLogMiddleware(DualMiddleware):
    def before(self, request: HttpRequest) -> HttpResponse | None:
        request._started_at = time.perf_counter()
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        started = getattr(request, "_started_at", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        method = method_label(request)
        route = route_of(request)
        status = response.status_code
        principal = auth.identify(request)
        HTTP_REQUEST_DURATION.labels(method=method, route=route, status_code=str(status)).observe(seconds)
        logger.info(
            "%s %s %s %.1fms",
            method,
            request.path,
            status,
            seconds * 1000,
            extra={
                "event": "http_request",
                "method": method,
                "path": request.path,
                "route": route,
                "status": status,
                "durationMs": round(seconds * 1000, 3),
                "client": request.META.get("REMOTE_ADDR", ""),
                "auth": principal.kind,
                "streaming": bool(getattr(response, "streaming", False)),
                # A tenant key's prefix names it (as in lists and the audit trail), never its secret.
                **({"keyPrefix": principal.key_prefix} if principal.key_prefix else {}),
            },
        )
        return response
