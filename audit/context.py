"""Who is acting, for the audit entries that the changes of this context write.

The API sets it per request (from the credential), the admin per request
(from the signed-in user), a command for its whole run, the Redis worker per
run it executes. Services read it when they record; none of them takes the
actor as a parameter, so no caller has to thread it through.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MASTER = "master"
SYSTEM = "system"
ANONYMOUS = "anonymous"


def key_actor(prefix: str) -> str:
    return f"key:{prefix}"


def admin_actor(username: str) -> str:
    return f"admin:{username}"


def command_actor(name: str) -> str:
    return f"command:{name}"


def worker_actor(run_id: object) -> str:
    return f"worker:{run_id}"


@dataclass(frozen=True)
class Actor:
    # A callable, so that the admin's user is read only when a change is recorded.
    name: Callable[[], str]
    ip: str = ""


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)
# The actor of threads that set none, for the life of a command: a thread does
# not inherit context variables (the reconciler's watch threads, say).
_process_default: str | None = None


def current() -> tuple[str, str]:
    """(actor, client address) of this context; ("system", "") when nobody set one."""
    actor = _current.get()
    if actor is None:
        return _process_default or SYSTEM, ""
    return actor.name(), actor.ip


@contextmanager
def process_actor(name: str) -> Iterator[None]:
    """`name` for every thread of the process that sets no actor of its own, for the block."""
    global _process_default
    previous, _process_default = _process_default, name
    try:
        yield
    finally:
        _process_default = previous


def begin(name: str | Callable[[], str], ip: str = "") -> contextvars.Token[Actor | None]:
    resolved = name if callable(name) else (lambda: name)
    return _current.set(Actor(resolved, ip))


def end(token: contextvars.Token[Actor | None]) -> None:
    _current.reset(token)


@contextmanager
def acting_as(name: str | Callable[[], str], ip: str = "") -> Iterator[None]:
    token = begin(name, ip)
    try:
        yield
    finally:
        end(token)
