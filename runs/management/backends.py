"""Turning an unreachable Redis or Kubernetes API into one clear line.

Commands that talk to a backend wrap that talk in `reachable(...)`, so an
operator (or a script reading the exit code) gets a CommandError naming
what could not be reached, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.core.management.base import CommandError
from kubernetes.config.config_exception import ConfigException

from runs.k8s import client as k8s
from runs.redis.queue import redis_url


def _redis_location() -> str:
    """host:port/db of the configured Redis, without credentials."""
    url = redis.connection.parse_url(redis_url())
    return f"{url.get('host', 'localhost')}:{url.get('port', 6379)}/{url.get('db', 0)}"


@contextmanager
def reachable_redis() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise CommandError(f"Redis at {_redis_location()} is unreachable: {type(exc).__name__}") from None


@contextmanager
def reachable_cluster() -> Iterator[None]:
    try:
        yield
    except ConfigException as exc:
        # Its message says which configuration was missing; it holds no secret.
        raise CommandError(f"no Kubernetes configuration: {exc}") from None
    except Exception as exc:
        if not k8s.is_unavailable(exc):
            raise
        raise CommandError(f"Kubernetes API unreachable: {k8s.describe_error(exc)}") from None


def serve_metrics(option: str, port: int) -> None:
    """Serve this process's metrics on `port`; a port taken or refused is a CommandError."""
    from orchestrator.prometheus import serve_process_metrics

    try:
        serve_process_metrics(port)
    except OSError as exc:
        raise CommandError(f"{option}: cannot listen on port {port}: {exc.strerror or exc}") from None
