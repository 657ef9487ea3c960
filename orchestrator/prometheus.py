"""`/metrics`, correct under several server processes.

With PROMETHEUS_MULTIPROC_DIR set (the gunicorn config sets it), every
process writes its samples to files there and a scrape of any process sums
them all; without it (one uvicorn process, tests) the process registry is read.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

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
    from runs import admission_metrics
    from runs.redis.metrics import scrape_time_registry

    body = generate_latest(_registry())
    # Runs waiting by admission reason, counted in the database now.
    body += generate_latest(admission_metrics.scrape_time_registry())
    # The queue and fleet gauges, read from Redis now: the API serves them, not each worker.
    read_now = scrape_time_registry()
    if read_now is not None:
        body += generate_latest(read_now)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def serve_process_metrics(port: int) -> None:
    """Serve this process's metrics on `port` from a background thread.

    For processes that are not the web server (a worker, the reconciler):
    Prometheus scrapes each of them on its own port.
    """
    from prometheus_client import start_http_server

    start_http_server(port, registry=_registry())
