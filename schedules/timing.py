"""When a schedule fires: cron expressions (through cronsim) and intervals.

Cron ticks are computed in the schedule's IANA timezone by cronsim, which
follows Debian cron, DST transitions included:

- clocks go forward (02:00 -> 03:00 in Europe/Berlin): a daily job at 02:30,
  a time that does not exist that day, fires at 03:00 local, the moment the
  skipped hour ends; jobs that run more often than hourly simply have no
  ticks in the skipped hour;
- clocks go back (03:00 -> 02:00): a daily job at 02:30 fires once, at the
  first 02:30 (summer time); jobs that run more often than hourly fire in
  both passes through the repeated hour.

Interval ticks are fixed UTC durations, blind to wall clocks: `anchor +
k * intervalSeconds`. Every tick is an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError


class TimingError(ValueError):
    """A cron expression or timezone that cannot be used, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; TimingError naming `timezone` when there is none."""
    # ZoneInfo also opens file paths and legacy names; only IANA keys are accepted.
    if name not in _zone_names():
        raise TimingError("timezone", f"{name!r} is not an IANA timezone name (e.g. Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError("timezone", f"{name!r} is not an IANA timezone name (e.g. Europe/Berlin)") from None


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def check_cron(expression: str, timezone_name: str = "UTC") -> None:
    """TimingError naming `cron` unless it is a 5-field expression that fires at least once."""
    fields = expression.split()
    if len(fields) != 5:
        raise TimingError(
            "cron", f"a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}"
        )
    tz = zone(timezone_name)
    try:
        iterator = CronSim(expression, datetime.now(tz))
    except CronSimError as exc:
        raise TimingError("cron", f"not a valid cron expression: {exc}") from None
    if next(iterator, None) is None:
        raise TimingError("cron", "this cron expression never fires")


@dataclass(frozen=True)
class Timing:
    """What decides a schedule's ticks."""

    cron: str | None
    interval_seconds: int | None
    timezone: str
    # Interval schedules: ticks are anchor + k * interval, k >= 0.
    anchor: datetime
    start_at: datetime | None = None
    end_at: datetime | None = None

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Ticks strictly after `moment`, in order, within startAt..endAt."""
        if self.start_at is not None and moment < self.start_at:
            moment = self.start_at - timedelta(microseconds=1)
        for tick in self._raw_after(moment):
            if self.end_at is not None and tick > self.end_at:
                return
            yield tick

    def next_after(self, moment: datetime) -> datetime | None:
        return next(self.after(moment), None)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The newest tick at or before `moment` (within startAt..endAt)."""
        if self.end_at is not None and moment > self.end_at:
            moment = self.end_at
        tick = self._raw_at_or_before(moment)
        if tick is None or (self.start_at is not None and tick < self.start_at):
            return None
        return tick

    def newest(self, moment: datetime, count: int, *, since: datetime) -> list[datetime]:
        """The newest `count` ticks in since..moment (both included), oldest first."""
        ticks: list[datetime] = []
        tick = self.latest_at_or_before(moment)
        while tick is not None and tick >= since and len(ticks) < count:
            ticks.append(tick)
            tick = self.latest_at_or_before(tick - timedelta(microseconds=1))
        return ticks[::-1]

    def upcoming(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` ticks at or after `moment`."""
        ticks = []
        for tick in self.after(moment - timedelta(microseconds=1)):
            ticks.append(tick)
            if len(ticks) == count:
                break
        return ticks

    # --- the two kinds ---
    def _raw_after(self, moment: datetime) -> Iterator[datetime]:
        if self.cron is not None:
            tz = zone(self.timezone)
            # cronsim works in whole minutes: from a moment inside a minute, it
            # starts at the next one, which is what "strictly after" needs.
            try:
                for local in CronSim(self.cron, moment.astimezone(tz)):
                    yield local.astimezone(UTC)
            except (OverflowError, ValueError):
                return  # past the last representable date: no more ticks
            return
        assert self.interval_seconds is not None
        step = timedelta(seconds=self.interval_seconds)
        try:
            tick = (
                self.anchor
                if moment < self.anchor
                else self.anchor + step * ((moment - self.anchor) // step + 1)
            )
            while True:
                yield tick
                tick += step
        except OverflowError:
            return  # past the last representable date: no more ticks

    def _raw_at_or_before(self, moment: datetime) -> datetime | None:
        if self.cron is not None:
            tz = zone(self.timezone)
            try:
                start = moment.astimezone(tz) + timedelta(microseconds=1)
                local = next(CronSim(self.cron, start, reverse=True), None)
            except (OverflowError, ValueError):
                return None
            return None if local is None else local.astimezone(UTC)
        assert self.interval_seconds is not None
        if moment < self.anchor:
            return None
        step = timedelta(seconds=self.interval_seconds)
        return self.anchor + step * ((moment - self.anchor) // step)
