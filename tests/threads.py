"""Threads that write through the ORM, as concurrent requests would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def in_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """A thread running `target(*args)` that gives its database connection back when done."""

    def body() -> None:
        try:
            target(*args)
        finally:
            connection.close()

    return threading.Thread(target=body)
