"""Request-wide guards that run before any view: request ids and the body limit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from orchestrator.asgi_guards import REFUSED
from orchestrator.logging import request_id_var
from runs.api.errors import error_response

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


class _DualMiddleware:
    """Base for middleware that must not force async views onto a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self._acall(request)
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        return self.after(request, self.get_response(request))  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        response = await self.get_response(request)  # type: ignore[misc]
        return self.after(request, response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class RequestIDMiddleware(_DualMiddleware):
    """Echo a sane client `X-Request-ID` or mint one; logs of the request carry it."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Request-ID"] = getattr(request, "request_id", request_id_var.get())
        return response


class BodySizeLimitMiddleware(_DualMiddleware):
    """Refuse a declared oversized body with 413 before anything reads it.

    Under ASGI the edge guard (`orchestrator.asgi_guards.BodyLimit`) has
    already refused it without reading it, and left the answer to give here.
    Bodies without a Content-Length are still bounded: Django raises
    RequestDataTooBig past DATA_UPLOAD_MAX_MEMORY_SIZE, which the API error
    handler maps to the same 413.
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        refusal = getattr(request, "scope", {}).get(REFUSED)
        if refusal is not None:
            status, message, code, details = refusal
            return error_response(status, message, code, details)
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "invalid Content-Length header", "bad_request")
        if length > settings.MAX_BODY_BYTES:
            return error_response(
                413,
                "request body too large",
                "body_too_large",
                {"maxBytes": settings.MAX_BODY_BYTES},
            )
        return None


class QueryStringMiddleware(_DualMiddleware):
    """400 naming the parameter for a query string PostgreSQL cannot compare
    with (U+0000), before any view or filter sees it."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        query = request.META.get("QUERY_STRING", "")
        if "%00" not in query and "\x00" not in query:
            return None
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                shown = name.replace("\x00", "\\u0000")
                return error_response(
                    400,
                    f"invalid parameter {shown}: must not contain U+0000",
                    "bad_parameter",
                    {"parameter": shown},
                )
        return None


class AdminOnlyMiddleware(_DualMiddleware):
    """Run Django's session, CSRF, auth and message middleware for the admin alone.

    Those are sync middleware: under ASGI each costs two thread hops per
    request, which the API (no sessions, no cookies) would pay for nothing.
    They wrap the admin's handler here, in the order settings.ADMIN_MIDDLEWARE
    lists them, and every other path goes straight through.
    """

    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        handler = get_response
        for dotted in reversed(settings.ADMIN_MIDDLEWARE):
            handler = import_string(dotted)(handler)
        self.admin_handler = handler

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if request.path.startswith(settings.ADMIN_PATH_PREFIX):
            return self.admin_handler(request)
        return self.get_response(request)


class ResponseHeadersMiddleware(_DualMiddleware):
    """Content-Length (so keep-alive clients need no chunked decoding) and the
    headers Django's SecurityMiddleware would add, for the API's answers."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
