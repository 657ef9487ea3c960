"""ASGI entry point, served by gunicorn with uvicorn workers."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django.setup(set_prefix=False)

# Imported once settings and logging are configured.
from orchestrator import tracing  # noqa: E402

# Before the handler loads the middleware: Django's instrumentation adds its own.
tracing.configure("orchestrator-api")

from orchestrator.handler import PooledThreadASGIHandler  # noqa: E402
from orchestrator.middleware.auth import warn_if_open  # noqa: E402
from orchestrator.middleware.body_limit import BodyLimit  # noqa: E402

application = BodyLimit(PooledThreadASGIHandler())

warn_if_open()
