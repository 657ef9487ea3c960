"""ASGI entry point, served by gunicorn with uvicorn workers."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django.setup(set_prefix=False)

from orchestrator.handler import PooledThreadASGIHandler  # noqa: E402 - needs settings

application = PooledThreadASGIHandler()
