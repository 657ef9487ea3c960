"""Tasks only the tests register (through WORKER_TASK_MODULES)."""

from __future__ import annotations

import os
import time
from typing import Any

from runs.redis.worker.context import TaskContext
from runs.redis.worker.tasks import task


@task("probe")
def probe(input: Any, ctx: TaskContext) -> None:
    """Records when and where it ran, so a test can check no run ran twice at once."""
    ctx.checkpoint("start", {"pid": os.getpid(), "t": time.time(), "attempt": ctx.attempt})
    ctx.wait(float((input or {}).get("seconds", 0)))
    ctx.checkpoint("end", {"pid": os.getpid(), "t": time.time(), "attempt": ctx.attempt})


@task("fail")
def fail(input: Any, ctx: TaskContext) -> None:
    raise RuntimeError("the task gave up")


@task("flaky")
def flaky(input: Any, ctx: TaskContext) -> None:
    """Fails every attempt before `succeedOn` (a retry test's task)."""
    ctx.checkpoint("attempt", {"attempt": ctx.attempt, "t": time.time()})
    if ctx.attempt < int((input or {}).get("succeedOn", 1)):
        raise RuntimeError(f"attempt {ctx.attempt} gave up")
