"""Priority: `"priority": 0..9` (default 5) on a run. Among runs handed over
and waiting for a worker, higher first: in Redis mode the queue holds one
stream per priority (runs.redis.queue, with its rule against starving the
lower ones); in k8s mode it names a PriorityClass for the Job's pod when the
operator mapped one (K8S_PRIORITY_CLASSES), and otherwise orders nothing
beyond what the cluster does. Runs waiting for a gate (a concurrency slot
included) are admitted by their gate's own order, not by priority."""

from __future__ import annotations

from typing import Any

from runs.exceptions import SchemaViolation

FIELD = "priority"
LOWEST = 0
HIGHEST = 9
DEFAULT = 5
LEVELS = tuple(range(HIGHEST, LOWEST - 1, -1))  # highest first


def parse(value: Any) -> int:
    """The run's priority from a request's value (None: the default); a 422 naming the field otherwise."""
    if value is None:
        return DEFAULT
    if isinstance(value, bool) or not isinstance(value, int) or not LOWEST <= value <= HIGHEST:
        raise SchemaViolation({FIELD: [f"an integer from {LOWEST} to {HIGHEST}, not {value!r}"]})
    return value
