"""Log records that carry the request id, as JSON lines or readable text."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "requestId": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    """Readable lines for development: the message, then `key=value` extras."""

    # The access line's message already says method, path, status and duration.
    _SHOWN_EXTRAS = {"orchestrator.access": ("client", "auth")}

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key != "event"
        }
        shown = self._SHOWN_EXTRAS.get(record.name)
        if shown is not None:
            extras = {key: extras[key] for key in shown if extras.get(key) is not None}
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return line


_QUERY_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s\"']+", re.IGNORECASE)
REDACTED = "[redacted]"


def _configured_keys() -> list[str]:
    try:
        from django.conf import settings

        return [key for key in getattr(settings, "ORCHESTRATOR_API_KEYS", []) if key]
    except Exception:
        return []


def _may_hold_a_token(text: str) -> bool:
    """False when neither pattern can match. Both are case-insensitive, and no
    character matches a letter of "token" or "bearer" that way without
    lowering to it, so the lowered text holds the patterns' fixed parts
    wherever they match. Two pattern scans for every string of every log
    record were half of what the access line cost."""
    lowered = text.lower()
    return "token=" in lowered or "bearer" in lowered


def redact(text: str, keys: list[str] | None = None) -> str:
    """`text` with API keys, bearer credentials and `?token=` values blanked out."""
    for key in _configured_keys() if keys is None else keys:
        if key in text:
            text = text.replace(key, REDACTED)
    if not _may_hold_a_token(text):
        return text
    text = _QUERY_TOKEN.sub(rf"\1{REDACTED}", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


class RedactCredentialsFilter(logging.Filter):
    """Defence in depth: even a careless log call must not write a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        keys = _configured_keys()
        message = record.getMessage()
        cleaned = redact(message, keys)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[name] = redact(value, keys)
        return True
