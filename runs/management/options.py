"""Parsing of command-line values shared by the `runs_*` management commands.

Each parser turns a bad value into a CommandError that names the option, so
every command exits non-zero with one clear line instead of a traceback.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.core.management.base import CommandError

from orchestrator.env import parse_duration
from runs import states
from runs.wire import parse_ts


def duration(option: str, text: str) -> timedelta:
    """`90s`, `15m`, `12h`, `30d` or `2w`."""
    value = parse_duration(text)
    if value is None:
        raise CommandError(f"{option}: {text!r} is not a duration like 90s, 15m, 12h, 30d or 2w")
    return value


def timestamp(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not an RFC 3339 timestamp") from None


def statuses(
    option: str, values: list[str] | None, *, allowed: tuple[str, ...] = states.STATUSES
) -> tuple[str, ...]:
    """Repeated or comma-separated statuses, each one of `allowed`."""
    parsed = tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())
    unknown = [value for value in parsed if value not in allowed]
    if unknown:
        raise CommandError(f"{option}: {', '.join(unknown)} is not one of {', '.join(allowed)}")
    return parsed


def run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a run id (a UUID)") from None


def int_between(option: str, value: int, minimum: int, maximum: int | None = None) -> int:
    """An integer option checked against its range, named in the error."""
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise CommandError(f"{option}: {value} is not {bound}")
    return value


def port(option: str, value: int) -> int:
    """A TCP port to listen on; 0 turns the listener off."""
    return int_between(option, value, 0, 65535)
