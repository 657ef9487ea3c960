"""Answering requests that waited together: the rate limiter's counts of one
moment and the group commit's appends each give every waiting request its
own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


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
