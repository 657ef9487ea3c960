"""The run state machine: which status may follow which.

pending -> running -> completed | failed; pending | running -> canceled.
A pending run may also fail (dispatch gave up, attempts spent before it ever
started). Final statuses never change.
"""

from __future__ import annotations

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"

STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELED)
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELED})

_ALLOWED: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, FAILED, CANCELED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
}

MODES = ("redis", "k8s")
PLAN = "plan"


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def can_transition(current: str, new: str) -> bool:
    return new in _ALLOWED.get(current, frozenset())
