"""Request-wide middleware around every view: the request id, the admin's own
chain, and the headers every answer carries."""

from __future__ import annotations

import os
import random
import re

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from orchestrator.errors import error_response
from orchestrator.logging import request_id_var
from orchestrator.middleware.base import DualMiddleware, Handler

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Minted ids are 128 random bits in hex, as `uuid4().hex` gave, but from a
# generator of the process's own, seeded from the system's randomness when the
# process starts (and again in a forked child): uuid4 asks the kernel for
# every id, a system call per request. Ids are unique, not secret.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_request_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class RequestIDMiddleware(DualMiddleware):
    """Echo a sane client `X-Request-ID` or mint one; logs of the request carry it."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id
        request_id_var.set(request_id)
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Request-ID"] = getattr(request, "request_id", request_id_var.get())
        return response


class AllowedHostsMiddleware(DualMiddleware):
    """ALLOWED_HOSTS on every path, not only where Django's own middleware
    asks (the admin). The probes answer any Host: a cluster's kubelet sends
    the pod's address."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if request.path in settings.HOST_CHECK_EXEMPT_PATHS:
            return None
        try:
            request.get_host()
        except DisallowedHost:
            return error_response(400, "host not allowed", "disallowed_host", {"header": "Host"})
        return None


class QueryStringMiddleware(DualMiddleware):
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


class AdminOnlyMiddleware(DualMiddleware):
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

    def __call__(self, request: HttpRequest):
        if request.path.startswith(settings.ADMIN_PATH_PREFIX):
            return self.admin_handler(request)
        return self.get_response(request)


class ResponseHeadersMiddleware(DualMiddleware):
    """Content-Length (so keep-alive clients need no chunked decoding) and the
    headers Django's SecurityMiddleware would add, for the API's answers."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
