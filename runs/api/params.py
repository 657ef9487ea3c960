"""Query-string and header parsing: each bad value is a 400 naming the parameter."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request

from runs import states
from runs.exceptions import BadParameter, SchemaViolation
from runs.wire import parse_ts

_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,200}$")


def int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, "must be an integer") from None
    if not minimum <= value <= maximum:
        raise BadParameter(name, f"must be between {minimum} and {maximum}")
    return value


def ts_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_ts(raw)
    except ValueError:
        raise BadParameter(name, "must be an RFC 3339 timestamp") from None


def uuid_param(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadParameter(name, "must be a UUID") from None


def choice_param(
    request: Request, name: str, choices: tuple[str, ...], default: str | None = None
) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}")
    return raw


def statuses_param(request: Request) -> tuple[str, ...]:
    raw = request.query_params.get("status", "")
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [value for value in values if value not in states.STATUSES]
    if unknown:
        raise BadParameter("status", f"must be among {', '.join(states.STATUSES)}")
    return values


def owner_filter(request: Request) -> str | None:
    """The `owner` a list is filtered by: at most 200 characters, as an owner is."""
    owner = request.query_params.get("owner")
    if owner is not None and len(owner) > 200:
        raise BadParameter("owner", "at most 200 characters")
    return owner


def owner_of(request: Request) -> str:
    """Who creates the run: the X-Actor-ID header, else the owner parameter."""
    owner = request.headers.get("X-Actor-ID") or request.query_params.get("owner") or ""
    if len(owner) > 200:
        raise BadParameter("owner", "at most 200 characters")
    return owner


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _PRINTABLE.match(key):
        raise BadParameter("Idempotency-Key", "1 to 200 printable ASCII characters")
    return key


def require_json_content(request: HttpRequest | Request) -> None:
    """A body sent as anything but JSON is a 415."""
    has_body = int(request.META.get("CONTENT_LENGTH") or 0) > 0 or "HTTP_TRANSFER_ENCODING" in request.META
    content_type = request.content_type.split(";")[0].strip().lower()
    if has_body and content_type != "application/json":
        raise UnsupportedMediaType(content_type or "(none)")


def json_body(request: Request) -> Any:
    """The parsed JSON body."""
    require_json_content(request)
    return request.data


def body_ts(body: dict[str, Any], name: str) -> datetime | None:
    """An optional RFC 3339 field of a (schema-checked) body; a 422 naming it otherwise."""
    raw = body.get(name)
    if raw is None:
        return None
    try:
        return parse_ts(raw)
    except ValueError:
        raise SchemaViolation({name: ["must be an RFC 3339 timestamp, e.g. 2026-12-01T09:30:00Z"]}) from None
