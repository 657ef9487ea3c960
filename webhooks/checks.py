"""`manage.py check` (and every command's start) refuses a malformed WEBHOOK_SECRET."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from webhooks.secrets import is_well_formed


@register()
def webhook_secret_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    secret = settings.WEBHOOK_SECRET
    if secret and not is_well_formed(secret):
        return [
            Error(
                "WEBHOOK_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes",
                hint='make one with: python -c "from webhooks.secrets import generate; print(generate())"',
                id="webhooks.E001",
            )
        ]
    return []
