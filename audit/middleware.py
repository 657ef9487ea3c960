"""The admin's actor: the signed-in user, for the audit entries of admin changes."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from audit import context
from orchestrator.middleware.base import DualMiddleware


class AdminActorMiddleware(DualMiddleware):
    """Runs in the admin's own middleware (after AuthenticationMiddleware)."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        def name() -> str:
            user = getattr(request, "user", None)
            username = user.get_username() if user is not None and user.is_authenticated else "-"
            return context.admin_actor(username)

        request._admin_actor = context.begin(name, request.META.get("REMOTE_ADDR") or "")
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        token = getattr(request, "_admin_actor", None)
        if token is not None:
            request._admin_actor = None
            context.end(token)
        return response
