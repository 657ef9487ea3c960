"""django-prometheus's request metrics, as middleware of ours.

Its own middleware's MiddlewareMixin base costs two thread hops per hook
under ASGI (on one shared thread). Its hooks only touch counters, so they
run inline, on the event loop.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django_prometheus import middleware as django_prometheus_middleware

from orchestrator.middleware.base import DualMiddleware, Handler

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})


class PrometheusBeforeMiddleware(DualMiddleware):
    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        self.metrics = django_prometheus_middleware.PrometheusBeforeMiddleware(get_response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        self.metrics.process_request(request)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return self.metrics.process_response(request, response)


class PrometheusAfterMiddleware(DualMiddleware):
    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        self.metrics = django_prometheus_middleware.PrometheusAfterMiddleware(get_response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        self.metrics.process_request(request)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # Its latency series is labelled with the raw method: made-up methods
        # would each open new series, so only the standard ones are recorded.
        if request.method not in _KNOWN_METHODS:
            return response
        if getattr(request, "resolver_match", None) is not None:
            self.metrics.process_view(request, None)
        return self.metrics.process_response(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        self.metrics.process_exception(request, exception)
