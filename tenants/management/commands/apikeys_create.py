"""Issue an API key for an owner with scopes; the key is printed once, on stdout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from runs.management import options
from tenants import scopes, services


class Command(AuditedCommand):
    help = (
        "Issue an API key that sees and creates only OWNER's runs, schedules and webhooks, "
        "limited to the given scopes. Prints the key (once: only its hash is kept) on stdout, "
        "and its id and prefix on stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'dashboard'")
        parser.add_argument("--owner", required=True, help="the tenant the key belongs to")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=scopes.ALL,
            metavar="SCOPE",
            help=f"repeat for each scope: {', '.join(scopes.ALL)}",
        )
        parser.add_argument("--expires-at", metavar="RFC3339", help="when the key stops working")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            api_key, secret = services.create_key(
                name=opts["name"],
                owner=opts["owner"],
                scopes=opts["scope"],
                expires_at=options.timestamp("--expires-at", opts["expires_at"]),
            )
        except services.InvalidKeyRequest as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        self.stderr.write(f"created key {api_key.id} (prefix {api_key.prefix}) for {api_key.owner}")
        self.stdout.write(secret)
