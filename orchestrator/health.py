"""Liveness and readiness probes, open to everyone."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Up: the process answers. Touches nothing."""
    return JsonResponse({"ok": True, "service": "orchestrator"})


def _database_problem() -> str | None:
    try:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return "migrations not applied"
    except DatabaseError as exc:
        return f"unreachable: {exc.__class__.__name__}"
    return None


def _redis_problem() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"unreachable: {exc.__class__.__name__}"
    return None


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Ready: the database answers and is migrated; Redis answers when configured."""
    problems = {
        name: problem
        for name, problem in (
            ("database", _database_problem()),
            ("redis", _redis_problem()),
        )
        if problem
    }
    if problems:
        return JsonResponse(
            {"ok": False, "error": "not ready", "code": "not_ready", "details": problems}, status=503
        )
    return JsonResponse({"ok": True})
