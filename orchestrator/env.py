"""Typed readers for settings that come from environment variables."""

from __future__ import annotations

import os
import re
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `15m`, `12h`, `30d` or `2w`; None for anything else."""
    match = _DURATION.match(text)
    if not match:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def env_duration(name: str, default: str) -> timedelta:
    raw = os.environ.get(name, "").strip() or default
    value = parse_duration(raw)
    if value is None or value <= timedelta(0):
        raise ImproperlyConfigured(f"{name} must be a duration like 90s, 15m, 12h, 7d or 2w, not {raw!r}")
    return value


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def env_int_map(name: str, *, lowest: int, highest: int) -> dict[int, str]:
    """`9=urgent,0=batch`: integers from `lowest` to `highest`, each to a name."""
    mapping: dict[int, str] = {}
    for part in env_list(name):
        key, sep, value = part.partition("=")
        try:
            number = int(key)
        except ValueError:
            number = None
        if not sep or number is None or not lowest <= number <= highest or not value.strip():
            raise ImproperlyConfigured(
                f"{name} must be pairs like 9=name,0=other with keys from {lowest} to {highest}, not {part!r}"
            )
        mapping[number] = value.strip()
    return mapping
