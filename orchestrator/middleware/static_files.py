"""The admin's static files, served by the app itself with ServeStatic.

ServeStatic (WhiteNoise's ASGI successor) gives an async-only Django
middleware. Put straight into MIDDLEWARE, a sync handler (the test client, a
WSGI server) would run every request through `async_to_sync` for it. This
wrapper hands ServeStatic only the paths under the static prefix, so no other
request meets it, and calls it the way Django would: awaited under ASGI,
through `async_to_sync` under a sync handler.
"""

from __future__ import annotations

from urllib.parse import urlparse

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.http import HttpRequest
from servestatic.middleware import ServeStaticMiddleware

from orchestrator.middleware.base import DualMiddleware, Handler


class StaticFilesMiddleware(DualMiddleware):
    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        # ServeStatic wants an async handler behind it; under a sync chain it
        # gets the sync one through sync_to_async (thread-sensitive: the
        # request's own thread), as Django's own adaptation would give it.
        onward = get_response if self.is_async else sync_to_async(get_response)
        self.servestatic = ServeStaticMiddleware(onward)
        self.prefix = urlparse(settings.STATIC_URL).path
        if not self.prefix.startswith("/"):
            self.prefix = "/" + self.prefix

    def __call__(self, request: HttpRequest):
        if not request.path_info.startswith(self.prefix):
            return self.get_response(request)
        if self.is_async:
            return self.servestatic(request)
        return async_to_sync(self.servestatic)(request)
