"""Liveness and readiness probes, open to everyone."""

from __future__ import annotations

import redis
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from runs.backends import get_backend
from runs.redis import queue as run_queue
from runs.redis.backend import RedisBackend


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Up: the process answers. Touches nothing."""
    return JsonResponse({"ok": True, "service": "orchestrator"})


def database_problem() -> str | None:
    """None when the database answers and every migration is applied."""
    try:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return "migrations not applied (run: python manage.py migrate)"
    except DatabaseError as exc:
        return f"unreachable: {exc.__class__.__name__}"
    return None


def redis_mode_in_use() -> bool:
    """Redis mode dispatches to Redis (its backend is not the null one)."""
    return isinstance(get_backend("redis"), RedisBackend)


def _redis_problem() -> str | None:
    if not redis_mode_in_use():
        return None
    try:
        client = redis.Redis.from_url(run_queue.redis_url(), socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"unreachable: {exc.__class__.__name__} ({run_queue.describe_redis()})"
    return None


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Ready: the database answers and is migrated; Redis answers where redis
    mode dispatches to it (a deployment without redis mode sets the null
    backend, and its readiness does not depend on Redis)."""
    problems = {
        name: problem
        for name, problem in (
            ("database", database_problem()),
            ("redis", _redis_problem()),
        )
        if problem
    }
    if problems:
        return JsonResponse(
            {
                "ok": False,
                "error": "not ready: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
                "code": "not_ready",
                "details": problems,
            },
            status=503,
            headers={"Retry-After": "5"},
        )
    return JsonResponse({"ok": True})
