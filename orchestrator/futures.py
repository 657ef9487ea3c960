"""Requests that wait together: the rate limiter's counts of one moment and
the group commit's appends are gathered per event loop (`PerLoop`), and each
waiting request gets its own outcome (`answer_each`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One `factory(loop)` for the running event loop. A server runs one loop
    for its life; one made for a loop since replaced (tests start several)
    is let go."""

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: Any = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._value = loop, self._factory(loop)
        return self._value


def answer_each(futures: Iterable[asyncio.Future[Any]], outcomes: Iterable[Any]) -> None:
    """Each future gets its outcome: raised if it is an exception, returned
    otherwise. A future already done (its request was cancelled, the client
    went away) is left as it is."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
