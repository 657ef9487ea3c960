"""List API keys (never their secrets)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from runs.management import render
from runs.management.base import OrchestratorCommand
from tenants import selectors
from tenants.wire import api_key_to_wire


class Command(OrchestratorCommand):
    help = "List API keys, newest first: prefix, owner, name, scopes, expiry, last use, revocation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", help="only this owner's keys")
        parser.add_argument("--json", action="store_true", help="one JSON object per key (the API's form)")

    def handle(self, *args: Any, **opts: Any) -> None:
        cursor = None
        while True:
            page, cursor = selectors.list_keys(owner=opts["owner"], limit=200, cursor=cursor)
            for api_key in page:
                wire = api_key_to_wire(api_key)
                if opts["json"]:
                    self.stdout.write(render.json_line(wire))
                    continue
                state = "revoked" if wire["revokedAt"] else "active"
                if state == "active" and not api_key.is_usable():
                    state = "expired"
                self.stdout.write(
                    f"{wire['prefix']:8}  {state:7}  {wire['owner']:20}  {wire['name']:20}  "
                    f"{','.join(wire['scopes'])}  expires={wire['expiresAt'] or '-'}  "
                    f"lastUsed={wire['lastUsedAt'] or '-'}  id={wire['id']}"
                )
            if cursor is None:
                return
