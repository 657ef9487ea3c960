"""Server-Sent Events framing. Frames are bytes built once and shared by
every subscriber of a run, so fan-out costs no per-subscriber encoding."""

from __future__ import annotations

import json
from typing import Any

KEEP_ALIVE = b": keep-alive\n\n"


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def event(name: str, data: Any, *, event_id: str | None = None) -> bytes:
    """One event; JSON never holds a raw newline, so `data:` stays one line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {name}")
    lines.append(f"data: {_json(data)}")
    return ("\n".join(lines) + "\n\n").encode()


def retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()
