"""`manage.py check` (and every command's start) refuses a malformed WEBHOOK_SECRET."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from webhooks.secrets import is_well_formed, server_secrets


@register()
def webhook_secret_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    if settings.WEBHOOK_SECRET and not all(is_well_formed(secret) for secret in server_secrets()):
        return [
            Error(
                "WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes"
                " (or several such secrets, comma-separated)",
                hint='make one with: python -c "from webhooks.secrets import generate; print(generate())"',
                id="webhooks.E001",
            )
        ]
    return []
