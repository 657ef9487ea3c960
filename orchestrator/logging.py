"""Log records that carry the request id, as JSON lines or readable text."""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import weakref
from datetime import UTC, datetime
from typing import IO

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


def redact(text: str, keys: list[str] | None = None) -> str:
    """`text` with API keys, bearer credentials and `?token=` values blanked out."""
    for key in _configured_keys() if keys is None else keys:
        if key in text:
            text = text.replace(key, REDACTED)
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


class BackgroundStreamHandler(logging.handlers.QueueHandler):
    """Log lines formatted and written by a thread of their own, off the request path.

    The caller's thread only runs the filters (the request id lives in the
    caller's context; credentials are blanked before the record leaves it),
    renders the message and enqueues the record; JSON formatting and the
    write happen on the listener's thread. No line is lost on the way out:
    closing the handler (logging.shutdown does it at exit, after SIGTERM too)
    drains the queue before it returns; and a forked child, which inherits
    the queue but not the thread, starts a listener of its own.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        # Made first, so logging.shutdown (newest first) closes this handler,
        # which drains into the target, before the target itself.
        self.target = logging.StreamHandler(stream if stream is not None else sys.stderr)
        super().__init__(queue.SimpleQueue())
        self.listener: _Listener | None = None
        self._lock_start = threading.Lock()
        self._start()
        _live_background_handlers.add(self)

    def _start(self) -> None:
        with self._lock_start:
            self.queue = queue.SimpleQueue()
            self.listener = _Listener(self.queue, self.target)
            self.listener.start()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self.target.setFormatter(fmt)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The message's arguments may change after the call returns: render
        # it now. The exception, if any, is kept for the formatter (its
        # traceback does not change), and the record is not copied: nothing
        # else holds it once it has been handled.
        record.msg = record.getMessage()
        record.args = None
        return record

    def flush(self) -> None:
        """Wait until every line enqueued so far is written."""
        listener = self.listener
        if listener is None or listener._thread is None:
            return
        written = threading.Event()
        self.queue.put_nowait(_FlushMarker(written))
        written.wait(5)
        self.target.flush()

    def close(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None and listener._thread is not None:
            listener.stop()  # writes everything still queued, then joins
        self.target.flush()
        _live_background_handlers.discard(self)
        super().close()

    def _after_fork_in_child(self) -> None:
        if self.listener is not None:
            self.listener._thread = None
            self._lock_start = threading.Lock()
            self._start()


class _FlushMarker(logging.LogRecord):
    """Put in the queue by flush(): the listener has written all before it when it reaches it."""

    def __init__(self, written: threading.Event) -> None:
        super().__init__("orchestrator.logging", logging.DEBUG, "", 0, "", None, None)
        self.written = written


class _Listener(logging.handlers.QueueListener):
    def handle(self, record: logging.LogRecord) -> None:
        if isinstance(record, _FlushMarker):
            record.written.set()
            return
        super().handle(record)


_live_background_handlers: weakref.WeakSet[BackgroundStreamHandler] = weakref.WeakSet()


def _restart_listeners_in_child() -> None:
    for handler in list(_live_background_handlers):
        handler._after_fork_in_child()


os.register_at_fork(after_in_child=_restart_listeners_in_child)
