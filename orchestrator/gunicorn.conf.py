"""gunicorn settings for the ASGI app: uvicorn workers, timeouts fit for long streams."""

import os

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
bind = f"0.0.0.0:{os.environ.get('PORT', '7070')}"
# Event streams stay open for hours: the worker timeout is a heartbeat check,
# not a request deadline, under uvicorn workers.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 75
accesslog = None
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel
# spreads new connections over them evenly. On one shared socket the worker
# that wakes first accepts a whole burst of connections, and a keep-alive
# client stays where it landed: one core did the work of two. The price: a
# second server started on the same port by mistake shares it instead of
# failing to start.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "true").lower() in ("1", "true", "yes", "on")

# Metrics from every worker, summed at scrape time: prometheus_client's
# multiprocess mode. The directory must be known before any worker imports
# prometheus_client, hence here, in the master.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="orchestrator-metrics-")


def on_starting(server):  # type: ignore[no-untyped-def]
    # Samples of an earlier server run would be summed in; Django is not
    # loaded in the master, so this stays free of project imports.
    from pathlib import Path

    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    # Live gauges of a dead worker (open streams) must stop counting.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
