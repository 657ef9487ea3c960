"""`/metrics`, correct under several server processes.

With PROMETHEUS_MULTIPROC_DIR set (the gunicorn config sets it), every
process writes its samples to files there and a scrape of any process sums
them all; without it (one uvicorn process, tests) the process registry is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def clear_multiprocess_dir(directory: str) -> None:
    """Forget the samples of earlier server runs (their files would be summed in)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
