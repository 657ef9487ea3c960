"""`/metrics`, correct under several server processes.

With PROMETHEUS_MULTIPROC_DIR set (the gunicorn config sets it), every
process writes its samples to files there and a scrape of any process sums
them all; without it (one uvicorn process, tests) the process registry is read.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from django_prometheus import middleware as django_prometheus_middleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from orchestrator.middleware import Handler, _DualMiddleware

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _registry() -> CollectorRegistry:
    """Every process's samples in multiprocess mode, else this process's."""
    directory = multiprocess_dir()
    if not directory:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def serve_process_metrics(port: int) -> None:
    """Serve this process's metrics on `port` from a background thread.

    For processes that are not the web server (a worker, the reconciler):
    Prometheus scrapes each of them on its own port.
    """
    from prometheus_client import start_http_server

    start_http_server(port, registry=_registry())


# django-prometheus's middleware, without the thread hops its MiddlewareMixin
# base costs under ASGI (two per hook, on one shared thread). Its hooks only
# touch counters, so they run inline, on the event loop.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})


class PrometheusBeforeMiddleware(_DualMiddleware):
    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        self.metrics = django_prometheus_middleware.PrometheusBeforeMiddleware(get_response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        self.metrics.process_request(request)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return self.metrics.process_response(request, response)


class PrometheusAfterMiddleware(_DualMiddleware):
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
