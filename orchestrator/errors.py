"""One JSON error shape for every failure a client can meet:
`{"error", "code", "details", "requestId"}`, never an HTML page or a trace.

Its one home, used by the request-path middleware and by every app's views:
apps import it, it imports no app. An app's own errors subclass `APIError`
to choose their status and code.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf

from orchestrator.logging import request_id_var

logger = logging.getLogger("runs.api")


class APIError(Exception):
    """An error a view raises to answer with this status and code."""

    status_code = 400
    code = "bad_request"
    # Response headers the answer carries (Retry-After on a 503).
    headers: dict[str, str] = {}

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        # Top-level keys the contract puts beside `error` (e.g. `from`, `to`).
        self.extra = extra


def error_response(
    status: int,
    message: str,
    code: str,
    details: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body: dict[str, Any] = {
        "error": message,
        "code": code,
        "details": details or {},
        "requestId": request_id_var.get(),
    }
    if extra:
        body.update(extra)
    return JsonResponse(body, status=status, headers=headers)


def database_unavailable(exc: Exception) -> JsonResponse:
    """503 for a database that cannot be reached, instead of a 500.

    After a PostgreSQL restart every idle pooled connection is dead; checking
    them all now means one request sees the outage, not one per connection.
    """
    logger.warning("database unavailable: %s", exc.__class__.__name__)
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    try:
        connection.close()
        if pool is not None:
            pool.check()
    except Exception:  # the database may still be down; the next request retries
        logger.debug("pool check failed", exc_info=True)
    return error_response(
        503,
        "database unavailable",
        "database_unavailable",
        headers={"Retry-After": "1"},
    )


def _drf_error(exc: drf.APIException) -> JsonResponse:
    if isinstance(exc, drf.ParseError):
        return error_response(400, "malformed JSON", "malformed_json", {"reason": str(exc.detail)})
    if isinstance(exc, drf.UnsupportedMediaType):
        return error_response(415, "request body must be application/json", "unsupported_media_type")
    if isinstance(exc, drf.MethodNotAllowed):
        return error_response(405, "method not allowed", "method_not_allowed")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return error_response(401, "unauthorized", "unauthorized")
    if isinstance(exc, drf.PermissionDenied):
        return error_response(403, "forbidden", "forbidden")
    if isinstance(exc, drf.Throttled):
        wait = int(exc.wait or 1)
        return error_response(
            429, "rate_limited", "rate_limited", {"retryAfter": wait}, headers={"Retry-After": str(wait)}
        )
    if isinstance(exc, drf.NotFound):
        return error_response(404, "not found", "not_found")
    if isinstance(exc, drf.ValidationError):
        return error_response(
            422, "request does not match the schema", "validation_error", {"fields": exc.detail}
        )
    return error_response(exc.status_code, str(exc.detail), exc.default_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse | None:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes one JSON error."""
    if isinstance(exc, APIError):
        return error_response(
            exc.status_code, exc.message, exc.code, exc.details, extra=exc.extra, headers=exc.headers or None
        )
    if isinstance(exc, drf.APIException):
        return _drf_error(exc)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "request body too large", "body_too_large")
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(exc)
    if isinstance(exc, Http404):
        return error_response(404, "not found", "not_found")
    if isinstance(exc, PermissionDenied):
        return error_response(403, "forbidden", "forbidden")
    if isinstance(exc, SuspiciousOperation):
        return error_response(400, "bad request", "bad_request")
    logger.exception("unhandled error")
    return error_response(500, "internal server error", "internal_error")


# Django-level handlers for what never reaches a DRF view.
def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "request body too large", "body_too_large")
    return error_response(400, "bad request", "bad_request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, "forbidden", "forbidden")


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, "not found", "not_found")


def handler500(request: HttpRequest) -> JsonResponse:
    return error_response(500, "internal server error", "internal_error")
