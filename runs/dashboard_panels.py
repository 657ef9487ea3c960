"""Panels other apps add to the admin dashboard (schedules due next, the
webhook backlog): each app registers a reader in its AppConfig.ready(), so the
dashboard shows them without `runs` importing the apps that build on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError

logger = logging.getLogger("runs.dashboard")


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    href: str = ""


@dataclass(frozen=True)
class Panel:
    key: str  # the section's id, dash-<key>
    title: str
    rows: list[Row] = field(default_factory=list)
    empty: str = "nothing"
    warning: str = ""


Reader = Callable[[], Panel]
_readers: dict[str, Reader] = {}


def register(key: str, reader: Reader) -> None:
    """Show `reader()`'s panel on the dashboard; registering a key again replaces it."""
    _readers[key] = reader


def read_all() -> list[Panel]:
    panels = []
    for key, reader in _readers.items():
        try:
            panels.append(reader())
        except DatabaseError as exc:
            logger.warning("dashboard panel %s failed: %s", key, type(exc).__name__)
            panels.append(Panel(key=key, title=key, warning=f"could not be read ({type(exc).__name__})"))
    return panels
