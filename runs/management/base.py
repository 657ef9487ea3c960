"""The base of the project's management commands: a database that cannot be
reached is one clear line and exit 1, never a traceback. (Long-running
commands ride out a database restart themselves; this is for what escapes
them: a database that is not there at all.)"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, connection

from orchestrator.database_check import shown_url


class OrchestratorCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except (OperationalError, InterfaceError) as exc:
            where = shown_url(_database_url())
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CommandError(f"the database at {where} is unreachable: {reason}") from None


def _database_url() -> str:
    settings_dict = connection.settings_dict
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict.get('NAME')}"
    return f"{connection.vendor}://{settings_dict.get('USER') or ''}@{host}{port}/{settings_dict.get('NAME')}"
