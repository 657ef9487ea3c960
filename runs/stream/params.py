"""The query parameters both event streams read the same way."""

from __future__ import annotations

from django.http import HttpRequest

from runs.exceptions import BadParameter

MAX_REPLAY = 1000


def replay(request: HttpRequest, *, default: int) -> int:
    """`?replay=N` (0..MAX_REPLAY); `default` when absent or empty."""
    raw = request.GET.get("replay")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter("replay", "must be an integer") from None
    if not 0 <= value <= MAX_REPLAY:
        raise BadParameter("replay", f"must be between 0 and {MAX_REPLAY}")
    return value


def resume_point(request: HttpRequest) -> tuple[str, str] | None:
    """(the parameter's name, its raw value) of where a reconnect resumes: the
    `Last-Event-ID` header (what browsers send) wins over `lastEventId`."""
    header = request.headers.get("Last-Event-ID")
    name, raw = ("Last-Event-ID", header) if header else ("lastEventId", request.GET.get("lastEventId"))
    return (name, raw) if raw else None
