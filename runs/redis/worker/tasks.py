"""The task registry and the built-in tasks.

A task is a callable `(input, ctx) -> None` registered under a name with
`@task("name")`; a run's `spec.task` names it. Modules listed in
WORKER_TASK_MODULES are imported at worker start so their tasks register.
Returning ends the run `completed`; raising fails it (`task_error`, or
CommandFailed's `command_failed`).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings

from runs.exceptions import SchemaViolation
from runs.redis.worker.context import TaskContext
from runs.validation import check_storable

TaskFunc = Callable[[Any, TaskContext], Any]

PR_SET_PDEATHSIG = 1
STDERR_TAIL_BYTES = 2000  # of a failed command's stderr, kept in the run's error

_registry: dict[str, TaskFunc] = {}


def task(name: str) -> Callable[[TaskFunc], TaskFunc]:
    """Register the decorated callable as the task `name`."""

    def register(func: TaskFunc) -> TaskFunc:
        if name in _registry and _registry[name] is not func:
            raise ValueError(f"task {name!r} is already registered")
        _registry[name] = func
        return func

    return register


def get_task(name: str) -> TaskFunc | None:
    return _registry.get(name)


def task_names() -> list[str]:
    return sorted(_registry)


def load_task_modules(modules: list[str] | None = None) -> None:
    for module in settings.WORKER_TASK_MODULES if modules is None else modules:
        importlib.import_module(module)


class TaskError(Exception):
    """A task failure with its own `error.code` and extra error fields."""

    code = "task_error"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.fields = fields


class CommandFailed(TaskError):
    code = "command_failed"


@task("sleep")
def sleep_task(input: Any, ctx: TaskContext) -> None:
    """Input `{"seconds": float, "checkpoints": int}`: that many checkpoints,
    evenly over the time (the last one at the end)."""
    params = input if isinstance(input, dict) else {}
    seconds = max(0.0, float(params.get("seconds", 0)))
    count = max(0, int(params.get("checkpoints", 0)))
    if count == 0:
        ctx.wait(seconds)
        return
    for index in range(1, count + 1):
        if ctx.wait(seconds / count):
            return
        ctx.checkpoint("progress", {"step": index, "of": count})


def _command_env(ctx: TaskContext) -> dict[str, str]:
    # Only named variables pass through: the worker's own environment holds secrets.
    env = {name: os.environ[name] for name in settings.WORKER_COMMAND_PASS_ENV if name in os.environ}
    env.update(ctx.spec.get("env") or {})
    env["ORCHESTRATOR_RUN_ID"] = ctx.run_id
    env["ORCHESTRATOR_ATTEMPT"] = str(ctx.attempt)
    return env


def _as_checkpoint(line: str) -> dict[str, Any] | None:
    """A stdout line that is a JSON object: `{"type", "data"}` as given, any other object as `stdout`.
    Lines over the checkpoint size limit, or holding what PostgreSQL cannot
    store (U+0000, an unpaired surrogate), are dropped rather than failing the run."""
    if len(line) > settings.MAX_CHECKPOINT_DATA_BYTES:
        return None
    try:
        value = json.loads(line)
        check_storable(value)
    except (ValueError, RecursionError, SchemaViolation):
        return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if isinstance(kind, str) and kind.strip() and len(kind) <= 200 and set(value) <= {"type", "data"}:
        return {"type": kind, "data": value.get("data")}
    return {"type": "stdout", "data": value}


def _die_with_worker() -> None:
    """In the child: be SIGKILLed if the worker dies (a SIGKILLed worker cannot stop it).

    The command has a session of its own, so signals to the worker's process
    group do not reach it; without this a killed worker's command would keep
    running beside the retry."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop_process(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    signal_group(signal.SIGTERM)
    timer = threading.Timer(grace, lambda: proc.poll() is None and signal_group(signal.SIGKILL))
    timer.daemon = True
    timer.start()


@task("command")
def command_task(input: Any, ctx: TaskContext) -> None:
    """Run `spec.command` with `spec.env`; each stdout line that is a JSON
    object becomes a checkpoint; a non-zero exit fails the run."""
    if not settings.WORKER_ALLOW_COMMAND:
        raise TaskError(
            "this worker does not run the command task (start it with WORKER_ALLOW_COMMAND=true)",
            code="command_not_allowed",
        )
    argv = ctx.spec.get("command")
    if not argv:
        raise TaskError("spec.command is required for the command task", code="bad_spec")
    lines: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
    with tempfile.TemporaryDirectory(prefix="run-") as workdir, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=_command_env(ctx),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a stop reaches its children too
            preexec_fn=_die_with_worker,
        )
        ctx.on_stop(lambda _reason: _stop_process(proc, settings.WORKER_KILL_GRACE_SECONDS))

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read_stdout, name=f"stdout-{ctx.run_id[:8]}", daemon=True)
        reader.start()
        _forward_checkpoints(lines, ctx)
        code = proc.wait()
        if ctx.stopping:
            return
        if code != 0:
            raise CommandFailed(f"command exited with {code}", exitCode=code, stderrTail=_tail(stderr))


def _tail(file: Any, limit: int = STDERR_TAIL_BYTES) -> str:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - limit))
    return file.read().decode(errors="replace")


def _forward_checkpoints(lines: queue.Queue[str | None], ctx: TaskContext) -> None:
    """Append checkpoints in batches of whatever lines are ready, until stdout closes."""
    limit = settings.MAX_CHECKPOINT_BATCH
    done = False
    while not done:
        line = lines.get()
        batch: list[dict[str, Any]] = []
        while True:
            if line is None:
                done = True
                break
            item = _as_checkpoint(line)
            if item is not None:
                batch.append(item)
            if len(batch) >= limit:
                break
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
        if batch and not ctx.stopping:
            ctx.checkpoints(batch)
