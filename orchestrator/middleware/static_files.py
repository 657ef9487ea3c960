"""The admin's static files, served by the app itself with WhiteNoise.

WhiteNoise's own middleware is sync-only: under ASGI it would cost every API
request two thread hops, and inside AdminOnlyMiddleware's hand-built chain it
would hand a coroutine to the sync middleware around it. This one is
sync- and async-capable, looks the path up in WhiteNoise's table (no I/O for
any other path) and answers static files directly.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from orchestrator.middleware.base import DualMiddleware, Handler


class StaticFilesMiddleware(DualMiddleware):
    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        # Only WhiteNoise's file table and header logic are used; it never calls onward.
        self.whitenoise = WhiteNoiseMiddleware(get_response=None)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path_info.startswith(self.whitenoise.static_prefix):
            return None
        if self.whitenoise.autorefresh:
            static_file = self.whitenoise.find_file(request.path_info)
        else:
            static_file = self.whitenoise.files.get(request.path_info)
        if static_file is None:
            return None
        found = static_file.get_response(request.method, request.META)
        # The admin's files are small: read at once rather than stream a sync
        # file iterator through the async handler.
        body = b""
        if found.file is not None:
            with found.file as handle:
                body = handle.read()
        response = HttpResponse(body, status=int(found.status))
        del response["Content-Type"]
        for name, value in found.headers:
            response[name] = value
        return response
