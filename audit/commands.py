"""The base of management commands that change things: what they change is
audited as `command:<name>`."""

from __future__ import annotations

from typing import Any

from audit import context
from runs.management.base import OrchestratorCommand


class AuditedCommand(OrchestratorCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        actor = context.command_actor(type(self).__module__.rsplit(".", 1)[-1])
        with context.process_actor(actor), context.acting_as(actor):
            return super().execute(*args, **options)
