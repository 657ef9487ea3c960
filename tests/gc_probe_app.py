"""An ASGI app that answers with its process's garbage-collector settings, served
under the project's gunicorn configuration to see what its hooks set."""

from __future__ import annotations

import gc
import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
