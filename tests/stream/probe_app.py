"""The app as served in stream tests, plus test-only probes of the event
stream hub, so a test can see from outside that a closed stream released its
subscriber, and drive a real browser. Never part of the real app:
- `GET /_test/stream-stats`: subscribers, tails, listener state, open-stream gauge;
- `POST /_test/drop-streams`: end every open stream (clients then resume);
- `GET /_test/eventsource.html`: a page following a run with EventSource,
  posting what it saw to `POST /_test/report` (read back with GET);
- `GET /_test/runlist.html?owner=O`: a page keeping a live run list with
  EventSource, reporting the same way;
- `GET /_test/requests`: each events request's Last-Event-ID and status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.asgi import application as django_application

PAGE = (Path(__file__).parent / "eventsource.html").read_bytes()
RUN_LIST_PAGE = (Path(__file__).parent / "runlist.html").read_bytes()
_report: list[Any] = []
_requests: list[dict[str, Any]] = []


def _stats() -> dict[str, Any]:
    from runs import metrics
    from runs.stream.hub import current_hub

    hub = current_hub()
    return {
        "subscribers": hub.subscriber_count() if hub else 0,
        "tails": len(hub.tails) if hub else 0,
        "listening": bool(hub and hub.listening),
        "streamsOpen": metrics.EVENT_STREAMS_OPEN._value.get(),
        "listSubscribers": len(hub.journal.subscribers) if hub else 0,
        "listLive": sum(s.live for s in hub.journal.subscribers) if hub else 0,
    }


def _drop_streams() -> dict[str, Any]:
    from runs.stream.hub import current_hub

    hub = current_hub()
    if hub is not None:
        hub.close_all()
    return {"ok": True}


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _answer(send: Any, body: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] != "http" or not path.startswith("/_test/"):
        if scope["type"] == "http" and path.endswith("/events"):
            headers = dict(scope["headers"])
            entry = {"lastEventId": headers.get(b"last-event-id", b"").decode(), "status": None}
            _requests.append(entry)

            async def recording_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    entry["status"] = message["status"]
                await send(message)

            await django_application(scope, receive, recording_send)
            return
        await django_application(scope, receive, send)
        return
    method = scope["method"]
    if path == "/_test/stream-stats":
        await _answer(send, json.dumps(_stats()).encode())
    elif path == "/_test/drop-streams" and method == "POST":
        await _answer(send, json.dumps(_drop_streams()).encode())
    elif path == "/_test/eventsource.html":
        await _answer(send, PAGE, b"text/html; charset=utf-8")
    elif path == "/_test/runlist.html":
        await _answer(send, RUN_LIST_PAGE, b"text/html; charset=utf-8")
    elif path == "/_test/report" and method == "POST":
        _report[:] = [json.loads(await _read_body(receive))]
        await _answer(send, b"{}")
    elif path == "/_test/report":
        await _answer(send, json.dumps(_report[0] if _report else None).encode())
    elif path == "/_test/threads":
        import threading

        await _answer(send, json.dumps([t.name for t in threading.enumerate()]).encode())
    elif path == "/_test/requests":
        await _answer(send, json.dumps(_requests).encode())
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
