"""What the `schedules_*` commands share: finding a schedule by id, one-line rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from schedules import selectors
from schedules.models import Schedule

LIST_HEADER = f"{'id':36}  {'name':24}  {'when':22}  {'paused':6}  {'next fire (UTC)':27}  last fired (UTC)"


def schedule_or_error(text: str) -> Schedule:
    """The schedule `text` names (its id); a CommandError that says so otherwise."""
    schedule = selectors.get_schedule(text)
    if schedule is None:
        raise CommandError(f"no schedule {text!r} (give a schedule id; `schedules_list` shows them)")
    return schedule


def row(wire: dict[str, Any]) -> str:
    when = wire["cron"] or f"every {wire['intervalSeconds']}s"
    if wire["cron"] and wire["timezone"] != "UTC":
        when = f"{when} {wire['timezone']}"
    next_fire = wire["nextFireTimes"][0] if wire["nextFireTimes"] else "-"
    return (
        f"{wire['id']:36}  {wire['name'][:24]:24}  {when[:22]:22}  {'yes' if wire['paused'] else 'no':6}  "
        f"{next_fire:27}  {wire['lastFiredAt'] or '-'}"
    )
