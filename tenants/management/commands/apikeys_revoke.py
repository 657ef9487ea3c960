"""Revoke API keys by id or prefix, at once, in every server process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from tenants import services
from tenants.exceptions import ApiKeyNotFound


class Command(AuditedCommand):
    help = (
        "Revoke one or more API keys (by id or by prefix): the next request with the key is "
        "refused, whichever server process it reaches. Exits non-zero when a key is unknown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="+", metavar="ID|PREFIX")

    def handle(self, *args: Any, **opts: Any) -> None:
        missing = 0
        for name in opts["keys"]:
            try:
                api_key = services.revoke_key(name)
            except ApiKeyNotFound:
                missing += 1
                self.stderr.write(f"{name}: no such key")
                continue
            self.stdout.write(f"{api_key.prefix}: revoked at {api_key.revoked_at.isoformat()}")
        if missing:
            raise CommandError(f"{missing} of {len(opts['keys'])} keys not found")
