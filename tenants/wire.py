from __future__ import annotations

from typing import Any

from runs.wire import format_ts
from tenants.models import ApiKey


def api_key_to_wire(api_key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(api_key.id),
        "name": api_key.name,
        "owner": api_key.owner,
        "scopes": list(api_key.scopes),
        "prefix": api_key.prefix,
        "createdAt": format_ts(api_key.created_at),
        "expiresAt": format_ts(api_key.expires_at),
        "lastUsedAt": format_ts(api_key.last_used_at),
        "revokedAt": format_ts(api_key.revoked_at),
    }
