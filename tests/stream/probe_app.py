"""The app as served in stream tests, plus one read-only probe of the event
stream hub (`/_test/stream-stats`), so a test can see from outside that a
closed stream released its subscriber. Never part of the real app."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.asgi import application as django_application

PROBE_PATH = "/_test/stream-stats"


def _stats() -> dict[str, Any]:
    from runs import metrics
    from runs.stream import listener

    hub = listener._hub
    return {
        "subscribers": hub.subscriber_count() if hub else 0,
        "tails": len(hub.tails) if hub else 0,
        "listening": bool(hub and hub.listening),
        "streamsOpen": metrics.EVENT_STREAMS_OPEN._value.get(),
    }


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == PROBE_PATH:
        body = json.dumps(_stats()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await django_application(scope, receive, send)
