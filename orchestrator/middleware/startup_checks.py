"""What a server process says at start-up, and its guard against an
unmigrated database.

At start it logs which Redis redis mode uses (the default one when REDIS_URL
is unset) and whether the database is migrated. Until it is, every request
but the probes answers 503 `not_ready` instead of a 500 from a missing
table; the check is repeated at most once a second, and never again once
the migrations are in. The start waits at most a few seconds for the first
check: a database too slow to answer by then answers later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse

from orchestrator.errors import error_response
from orchestrator.health import database_problem, redis_mode_in_use
from runs.redis import queue as run_queue

logger = logging.getLogger("orchestrator.startup")

RECHECK_SECONDS = 1.0
STARTUP_WAIT_SECONDS = 3.0
# Probes keep their own answers: /ready names what is missing.
UNGUARDED_PATHS = ("/health", "/ready")
PASS, REFUSE, CHECK = "pass", "refuse", "check"
# Migrations are never taken back while a process runs: once seen applied,
# no handler of this process (the test client builds one per client) asks again.
_seen_migrated = False


def _off_the_loop(check: Callable[[], str | None], then: Callable[[str | None], None]) -> None:
    """Run a database check on a thread of its own (at import time an event
    loop may already run in this one, where Django refuses sync queries) and
    hand its answer to `then`. Waits STARTUP_WAIT_SECONDS for it: a slow
    database must not hold the server's start, so a later answer comes in
    when it comes."""

    def target() -> None:
        try:
            problem = check()
        except Exception as exc:  # never let a start-up check take the server down
            problem = f"check failed: {exc.__class__.__name__}"
        finally:
            connection.close()
        then(problem)

    thread = threading.Thread(target=target, name="startup-check", daemon=True)
    thread.start()
    thread.join(STARTUP_WAIT_SECONDS)


def _unmigrated() -> bool:
    problem = database_problem()
    return problem is not None and problem.startswith("migrations not applied")


class StartupChecksMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self._lock = threading.Lock()
        self._next_check = time.monotonic() + RECHECK_SECONDS
        self._migrated = _seen_migrated
        if self._migrated:
            return
        if redis_mode_in_use():
            logger.info(
                "redis mode dispatches to %s", run_queue.describe_redis(), extra={"event": "redis_used"}
            )
        # Served meanwhile: until the check answers, requests go through.
        self._migrated = True
        _off_the_loop(database_problem, self._started_with)

    def _started_with(self, problem: str | None) -> None:
        if problem is not None and problem.startswith("migrations not applied"):
            self._migrated = False
            logger.error(
                "the database is not migrated: every API request answers 503 until "
                "`python manage.py migrate` has run",
                extra={"event": "database_unmigrated"},
            )
            return
        if problem is not None:
            # Unreachable now: requests answer 503 database_unavailable until it
            # is back, and this guard does not look again.
            logger.warning("database %s at start-up", problem, extra={"event": "database_unreachable"})
        self._set_migrated(True)

    def _set_migrated(self, migrated: bool) -> None:
        global _seen_migrated
        self._migrated = migrated
        if migrated:
            _seen_migrated = True

    def _verdict(self, request: HttpRequest) -> str:
        """PASS, REFUSE, or CHECK (the database again, a second after the last look)."""
        if self._migrated or request.path in UNGUARDED_PATHS:
            return PASS
        with self._lock:
            if time.monotonic() < self._next_check:
                return REFUSE
            self._next_check = time.monotonic() + RECHECK_SECONDS
        return CHECK

    def _refusal(self) -> HttpResponse:
        return error_response(
            503,
            "the database is not migrated: run `python manage.py migrate`",
            "not_ready",
            {"database": "migrations not applied"},
            headers={"Retry-After": "5"},
        )

    def _still_unmigrated(self) -> bool:
        try:
            unmigrated = _unmigrated()
        finally:
            connection.close()
        if not unmigrated:
            self._set_migrated(True)
            logger.info("the database is migrated: serving", extra={"event": "database_migrated"})
        return unmigrated

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        verdict = self._verdict(request)
        if verdict == REFUSE or (verdict == CHECK and self._still_unmigrated()):
            return self._refusal()
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        verdict = self._verdict(request)
        if verdict == REFUSE or (verdict == CHECK and await sync_to_async(self._still_unmigrated)()):
            return self._refusal()
        return await self.get_response(request)
