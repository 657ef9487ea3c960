"""Resume a paused schedule from its next tick after now."""

from __future__ import annotations

from schedules.management.commands import schedules_pause


class Command(schedules_pause.Command):
    help = "Resume a paused schedule: from its first tick after now (ticks of the pause are not made up)."
    paused = False
