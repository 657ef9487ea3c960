"""Who is calling, and may they call this: API keys and run-scoped tokens.

The decision is made in middleware, before the view, so it covers every
view alike: DRF views, the async event stream and plain Django views. The
admin keeps Django's own session login and is not touched here.

Master keys come from ORCHESTRATOR_API_KEY and may do everything. Tenant
keys live in the database (`tenants`): each is limited to one owner and to
its scopes, checked per endpoint by `tenants.rules`. Checking a tenant key
reads the database, so the middleware does that off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, ResolverMatch, get_urlconf, resolve

from audit import context as audit_context
from orchestrator import db_threads
from orchestrator.errors import error_response
from orchestrator.middleware.base import DualMiddleware
from runs import tokens
from tenants import keys as tenant_keys
from tenants import rules

logger = logging.getLogger("orchestrator.auth")

API_KEY = "api_key"
# A database key: UNCHECKED_KEY until `check_tenant_key` has read it, then
# TENANT_KEY (or INVALID).
TENANT_KEY = "tenant_key"
UNCHECKED_KEY = "unchecked_key"
STREAM_TOKEN = "stream_token"  # noqa: S105 (a kind of principal, not a secret)
WORKER_TOKEN = "worker_token"  # noqa: S105
LIST_STREAM_TOKEN = "list_stream_token"  # noqa: S105
ANONYMOUS = "anonymous"
INVALID = "invalid"

# Which endpoints a token opens is keyed on the URL names of urls.py, so the
# routing table stays the one Django resolves.
STREAM_ROUTE = "run-events"
LIST_STREAM_ROUTE = "run-list-events"
# What a worker token opens, for its own run only. GET of the run lets a
# worker see that its run was canceled without holding the API key.
WORKER_SCOPES: dict[str, frozenset[str]] = {
    "run-checkpoints": frozenset({"POST"}),
    "run": frozenset({"PATCH", "GET"}),
}
OPEN_ROUTES = frozenset({"health", "ready"})
METRICS_ROUTE = "metrics"
# Left to Django's session authentication (and its CSRF protection); a
# prefix, since the admin's static files are served here without a route.
SESSION_PREFIXES = (settings.ADMIN_PATH_PREFIX,)


class Route(NamedTuple):
    """The endpoint a path resolves to: its URL name and the run it names."""

    name: str | None
    run_id: str | None


NO_ROUTE = Route(None, None)


def _route(request: HttpRequest) -> Route:
    """The endpoint of this request's path, resolved once per request. Only
    the name and run id are kept: an event stream's request lives as long
    as the stream, and a second ResolverMatch per subscriber adds up. The
    match itself waits for Django's handler (`take_match`), which would
    otherwise resolve the path again and keeps the match as
    `request.resolver_match`."""
    cached = request.__dict__.get("_auth_route")
    if cached is None:
        try:
            match = resolve(request.path_info)
            cached = Route(match.url_name, match.kwargs.get("run_id"))
            if get_urlconf() in (None, settings.ROOT_URLCONF):
                request.__dict__["_auth_match"] = (request.path_info, match)
        except Resolver404:
            cached = NO_ROUTE
        request.__dict__["_auth_route"] = cached
    return cached


def take_match(request: HttpRequest) -> ResolverMatch | None:
    """The match `_route` found with the root URLconf, handed over once; None
    when it found none, or when the path changed since."""
    found = request.__dict__.pop("_auth_match", None)
    if found is None or found[0] != request.path_info:
        return None
    return found[1]


def route_name(request: HttpRequest) -> str | None:
    """The URL name of the endpoint this path resolves to; None when none does."""
    return _route(request).name


@dataclass(frozen=True)
class Principal:
    """The credential a request presented, judged on its own (not yet for this path).

    `fingerprint` names the credential without revealing it (a hash), for
    rate limiting; it is None when the request has no genuine credential.
    """

    kind: str
    fingerprint: str | None = None
    run_id: str | None = None
    expired: bool = False
    problem: str | None = None
    # The only owner whose runs this credential sees; None: every owner.
    owner: str | None = None
    # A tenant key's scopes and prefix; None for every other credential.
    scopes: frozenset[str] | None = None
    key_prefix: str | None = None


def api_keys() -> list[str]:
    return list(settings.ORCHESTRATOR_API_KEYS)


def fingerprint(secret: str) -> str:
    return hashlib.sha256(b"orchestrator-credential:" + secret.encode()).hexdigest()[:32]


def _matches_a_key(candidate: str, keys: list[str]) -> bool:
    # Digests have one length, so the comparison leaks neither content nor
    # length; every key is compared so timing does not tell which one matched.
    digest = hashlib.sha256(candidate.encode()).digest()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(digest, hashlib.sha256(key.encode()).digest())
    return matched


def _header_credential(request: HttpRequest) -> str | None:
    api_key = request.headers.get("X-API-Key")
    if api_key:
        return api_key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _token_principal(raw: str, kind: str) -> Principal:
    try:
        claims = tokens.read(raw)
    except tokens.InvalidToken:
        return Principal(INVALID, problem="invalid_credentials")
    if claims.kind != kind:
        return Principal(INVALID, problem="invalid_credentials")
    principal_kind = {
        tokens.STREAM: STREAM_TOKEN,
        tokens.WORKER: WORKER_TOKEN,
        tokens.LIST_STREAM: LIST_STREAM_TOKEN,
    }[kind]
    return Principal(
        principal_kind, fingerprint(raw), run_id=claims.run_id, expired=claims.expired, owner=claims.owner
    )


def identify(request: HttpRequest) -> Principal:
    """The request's credential, judged once and kept on the request."""
    cached = getattr(request, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = _identify(request)
    request.principal = principal
    return principal


def _identify(request: HttpRequest) -> Principal:
    presented = _header_credential(request)
    if presented is not None:
        keys = api_keys()
        if keys and _matches_a_key(presented, keys):
            return Principal(API_KEY, fingerprint(presented))
        if tenant_keys.prefix_of(presented) is not None:
            request._presented_key = presented
            return Principal(UNCHECKED_KEY, fingerprint(presented))
        if "X-API-Key" not in request.headers:
            # A Bearer value that is not a key may be a worker token; a stream
            # token is only ever accepted from the query string.
            return _token_principal(presented, tokens.WORKER)
        return Principal(INVALID, problem="invalid_credentials")
    query_token = request.GET.get("token")
    if query_token is not None:
        if request.method == "GET" and route_name(request) == STREAM_ROUTE:
            return _token_principal(query_token, tokens.STREAM)
        if request.method == "GET" and route_name(request) == LIST_STREAM_ROUTE:
            return _token_principal(query_token, tokens.LIST_STREAM)
        return Principal(INVALID, problem="invalid_credentials")
    return Principal(ANONYMOUS, problem="missing_credentials")


def needs_key_check(request: HttpRequest) -> bool:
    """Whether this request carries a database key not yet read (do it off the loop)."""
    return not is_open(request) and bool(api_keys()) and identify(request).kind == UNCHECKED_KEY


def check_tenant_key(request: HttpRequest) -> None:
    """Read the presented database key and settle the request's principal (blocking)."""
    from tenants import services as tenant_services

    principal = identify(request)
    if principal.kind != UNCHECKED_KEY:
        return
    identity, problem = tenant_services.authenticate(request._presented_key)
    if identity is None:
        settled = Principal(INVALID, principal.fingerprint, problem=problem)
    else:
        settled = Principal(
            TENANT_KEY,
            principal.fingerprint,
            owner=identity.owner,
            scopes=identity.scopes,
            key_prefix=identity.prefix,
        )
    request.principal = settled


def scope_refusal(request: HttpRequest) -> HttpResponse | None:
    """403 missing_scope when a tenant key lacks the scope of this endpoint."""
    principal = identify(request)
    if principal.kind != TENANT_KEY or principal.scopes is None:
        return None
    route = _route(request)
    if route is NO_ROUTE:
        return None  # the view answers 404
    scope = rules.required_scope(route.name, request.method or "GET")
    if scope is rules.NO_RULE:
        # Fail closed: the URL-map test makes sure every endpoint's methods have rules.
        return error_response(405, "method not allowed", "method_not_allowed")
    if scope == rules.ANY_KEY or scope in principal.scopes:
        return None
    return error_response(403, "forbidden", "missing_scope", {"scope": scope})


def actor_of(principal: Principal) -> str:
    """The audit actor for a request made with this credential."""
    if principal.kind == API_KEY:
        return audit_context.MASTER
    if principal.kind == TENANT_KEY and principal.key_prefix:
        return audit_context.key_actor(principal.key_prefix)
    if principal.kind == WORKER_TOKEN and principal.run_id:
        return audit_context.worker_actor(principal.run_id)
    return audit_context.ANONYMOUS


def restricted_owner(request: HttpRequest) -> str | None:
    """The owner the request's credential is limited to (a tenant's key or token); None: any."""
    principal = getattr(request, "principal", None)
    return principal.owner if isinstance(principal, Principal) else None


def is_open(request: HttpRequest) -> bool:
    """Paths that never need a credential (probes, scraping, preflight, the admin)."""
    if request.method == "OPTIONS" or request.path_info.startswith(SESSION_PREFIXES):
        return True
    name = route_name(request)
    if name == METRICS_ROUTE:
        return not settings.METRICS_REQUIRE_AUTH
    return name in OPEN_ROUTES


def _same_run(path_run_id: str, token_run_id: str) -> bool:
    try:
        return uuid.UUID(path_run_id) == uuid.UUID(token_run_id)
    except ValueError:
        return False


def _token_scope_run(request: HttpRequest, kind: str) -> str | None:
    """The run id in the path when `kind` of token may call this method on this endpoint."""
    route = _route(request)
    if kind == STREAM_TOKEN:
        opens = route.name == STREAM_ROUTE and request.method == "GET"
    else:
        opens = request.method in WORKER_SCOPES.get(route.name or "", ())
    return route.run_id if opens else None


def refusal(request: HttpRequest) -> str | None:
    """Why this request may not proceed (an error code), or None when it may."""
    if is_open(request) or not api_keys():
        return None
    principal = identify(request)
    if principal.kind in (API_KEY, TENANT_KEY):
        return None
    if principal.kind == LIST_STREAM_TOKEN:
        if request.method != "GET" or route_name(request) != LIST_STREAM_ROUTE:
            return "token_not_valid_here"
        return "expired_token" if principal.expired else None
    if principal.kind in (STREAM_TOKEN, WORKER_TOKEN):
        scope_run = _token_scope_run(request, principal.kind)
        if scope_run is None or principal.run_id is None or not _same_run(scope_run, principal.run_id):
            return "token_not_valid_here"
        if principal.expired:
            return "expired_token"
        return None
    return principal.problem or "invalid_credentials"


def unauthorized(code: str) -> HttpResponse:
    return error_response(401, "unauthorized", code, headers={"WWW-Authenticate": "Bearer"})


class APIKeyMiddleware(DualMiddleware):
    """401 for a request without a credential good for this path; never echoes it.
    403 for a tenant key without the endpoint's scope. Sets the audit actor."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if needs_key_check(request):
            check_tenant_key(request)
        return self._decide(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if needs_key_check(request):
            await db_threads.run(check_tenant_key, request)
        early = self._decide(request)
        if early is not None:
            return self.after(request, early)
        response = await self.get_response(request)
        return self.after(request, response)

    def _decide(self, request: HttpRequest) -> HttpResponse | None:
        code = refusal(request)
        if code is not None:
            logger.info("request refused", extra={"event": "auth_refused", "reason": code})
            return unauthorized(code)
        forbidden = scope_refusal(request)
        if forbidden is not None:
            logger.info("request refused", extra={"event": "auth_refused", "reason": "missing_scope"})
            return forbidden
        if not is_open(request):
            principal = identify(request)
            request._audit_token = audit_context.begin(
                actor_of(principal), request.META.get("REMOTE_ADDR") or ""
            )
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        token = getattr(request, "_audit_token", None)
        if token is not None:
            request._audit_token = None
            try:
                audit_context.end(token)
            except ValueError:
                pass  # set in another context (a streaming response finishing elsewhere)
        return response


_warned = False


def warn_if_open() -> None:
    """Say loudly, once per process, that the API answers anyone."""
    global _warned
    if _warned or api_keys():
        return
    _warned = True
    logger.warning(
        "ORCHESTRATOR_API_KEY is not set: the API accepts requests without credentials. "
        "Set it before exposing this server beyond localhost.",
        extra={"event": "auth_disabled"},
    )
