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
