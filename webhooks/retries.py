"""When a failed attempt is tried again: WEBHOOK_RETRY_SCHEDULE, jittered."""

from __future__ import annotations

import random
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def schedule() -> list[float]:
    """The delays after the 1st, 2nd, … failed attempt of a series, in seconds."""
    raw = settings.WEBHOOK_RETRY_SCHEDULE
    try:
        delays = [float(part) for part in str(raw).split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(
            f"WEBHOOK_RETRY_SCHEDULE must be a comma list of seconds, not {raw!r}"
        ) from None
    if any(delay < 0 for delay in delays):
        raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE must not hold negative delays")
    return delays


def delay_after(
    failures: int,
    delays: list[float],
    *,
    jitter: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """Seconds until the next attempt after `failures` failed attempts of the
    series, or None when the schedule is spent. Jitter spreads receivers'
    recoveries: each delay is scaled by a factor in [1 - jitter, 1 + jitter]."""
    if failures < 1 or failures > len(delays):
        return None
    base = delays[failures - 1]
    return max(0.0, base * uniform(1.0 - jitter, 1.0 + jitter))
