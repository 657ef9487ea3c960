"""Retries: a failed attempt with attempts left goes back to `pending`.

The run's retry policy (`Run.retry`, the `retry` field of POST /runs) is
stored normalised, with every default filled in. A failed attempt of a
handed-over run (task error, non-zero exit, timeout, lost worker, failed Job)
with attempts left becomes `running → pending`: `attempt` + 1, `error` keeps
that attempt's error, and a time gate (`not_before`, `waitingFor`
`{"reason": "backoff"}`) holds it until its backoff has passed, when the
scheduler's `admit_due` hands it to its backend again, like a run waiting
for its `runAt`.

A lost worker is one more failed attempt of the same budget. Its backoff is
the lease period it took to notice the loss, so the worker that finds the
run abandoned takes it over at once (`services.begin_attempt`), still
recorded as a retry. Runs without a policy keep the budget they always had
against lost workers (`spec.maxAttempts`, else WORKER_DEFAULT_MAX_ATTEMPTS),
and nothing else is retried for them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from runs.models import Run
from runs.wire import format_ts

BACKOFF = "backoff"
WORKER_LOST = "worker_lost"

DEFAULT_BACKOFF_SECONDS = 1.0
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_MAX_BACKOFF_SECONDS = 600.0
# Each delay is drawn from [1 - JITTER, 1] of the computed one: runs that
# failed together (a database blip) do not all come back in the same instant.
JITTER = 0.2

# Failures another attempt cannot mend: the run never ran, or was told not to.
NEVER_RETRIED = frozenset({"dependency_failed", "dispatch_rejected", "canceled"})


def normalise_policy(retry: dict[str, Any] | None, spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The policy to store: the request's `retry` with its defaults, or, for
    a request without one, `spec.maxAttempts` (the older spelling of the same
    budget) with the default backoff. None: a failure is final."""
    if retry is None:
        attempts = (spec or {}).get("maxAttempts")
        if not attempts:
            return None
        retry = {"maxAttempts": attempts}
    return {
        "maxAttempts": int(retry["maxAttempts"]),
        "backoffSeconds": float(retry.get("backoffSeconds", DEFAULT_BACKOFF_SECONDS)),
        "backoffFactor": float(retry.get("backoffFactor", DEFAULT_BACKOFF_FACTOR)),
        "maxBackoffSeconds": float(retry.get("maxBackoffSeconds", DEFAULT_MAX_BACKOFF_SECONDS)),
    }


def max_attempts(run: Run, code: str) -> int:
    """How many attempts the run may have, for a failure with error code `code`."""
    if run.retry:
        return int(run.retry["maxAttempts"])
    if code == WORKER_LOST:
        return int((run.spec or {}).get("maxAttempts") or settings.WORKER_DEFAULT_MAX_ATTEMPTS)
    return 1


def should_retry(run: Run, error: dict[str, Any] | None) -> bool:
    """A failing attempt (running, or handed over) gets another one (see the module docstring)."""
    code = str((error or {}).get("code", ""))
    if code in NEVER_RETRIED:
        return False
    return run.attempt < max_attempts(run, code)


def backoff_seconds(policy: dict[str, Any] | None, failed_attempt: int, *, jitter: bool = True) -> float:
    """The wait after attempt `failed_attempt` (1-based) failed:
    backoffSeconds * backoffFactor^(attempt-1), capped at maxBackoffSeconds,
    less up to JITTER of it at random."""
    policy = policy or normalise_policy({"maxAttempts": 1}, None)
    assert policy is not None
    cap = policy["maxBackoffSeconds"]
    exponent = max(0, failed_attempt - 1)
    try:
        delay = min(cap, policy["backoffSeconds"] * policy["backoffFactor"] ** exponent)
    except OverflowError:
        delay = cap
    if jitter:
        delay *= 1 - JITTER * random.random()
    return delay


def hold_for_backoff(run: Run, now: datetime) -> datetime:
    """Set the backoff gate on a run whose attempt `run.attempt - 1` just failed; when it opens."""
    due = now + timedelta(seconds=backoff_seconds(run.retry, run.attempt - 1))
    run.not_before = due
    run.waiting_for = {"reason": BACKOFF, "until": format_ts(due), "attempt": run.attempt}
    return due
