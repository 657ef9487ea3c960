"""The scope each endpoint needs from a tenant's API key, by URL name and method.

Master keys (ORCHESTRATOR_API_KEY) and per-run tokens are not judged here:
master keys may do everything, tokens what `orchestrator.middleware.auth`
lets them. tests/test_scope_rules.py walks the URL map and fails for any
endpoint (or any method of a view) without a rule here, so a new endpoint
cannot ship unguarded.
"""

from __future__ import annotations

from tenants import scopes as s

# Any valid key, whatever its scopes (the API's own description).
ANY_KEY = ""

RULES: dict[str, dict[str, str]] = {
    "openapi": {"GET": ANY_KEY},
    "runs": {"GET": s.RUNS_READ, "POST": s.RUNS_WRITE},
    "run-list-events": {"GET": s.RUNS_READ},
    "run-list-stream-token": {"POST": s.RUNS_READ},
    "run": {"GET": s.RUNS_READ, "PATCH": s.RUNS_REPORT, "DELETE": s.RUNS_WRITE},
    "run-checkpoints": {"GET": s.RUNS_READ, "POST": s.RUNS_REPORT},
    "run-stream-token": {"POST": s.RUNS_READ},
    "run-events": {"GET": s.RUNS_READ},
    "schedules": {"GET": s.SCHEDULES_READ, "POST": s.SCHEDULES_WRITE},
    "schedule-preview": {"GET": s.SCHEDULES_READ},
    "schedule": {"GET": s.SCHEDULES_READ, "PATCH": s.SCHEDULES_WRITE, "DELETE": s.SCHEDULES_WRITE},
    "schedule-trigger": {"POST": s.SCHEDULES_WRITE},
    "webhooks": {"GET": s.WEBHOOKS_READ, "POST": s.WEBHOOKS_WRITE},
    "webhook": {"GET": s.WEBHOOKS_READ, "PATCH": s.WEBHOOKS_WRITE, "DELETE": s.WEBHOOKS_WRITE},
    "webhook-rotate-secret": {"POST": s.WEBHOOKS_WRITE},
    "webhook-deliveries": {"GET": s.WEBHOOKS_READ},
    "webhook-redeliver": {"POST": s.WEBHOOKS_WRITE},
    "api-keys": {"GET": s.KEYS_MANAGE, "POST": s.KEYS_MANAGE},
    "api-key": {"GET": s.KEYS_MANAGE, "DELETE": s.KEYS_MANAGE},
    "audit": {"GET": s.AUDIT_READ},
}

# Endpoints no key is asked for: probes and scraping (see auth.OPEN_ROUTES),
# and the admin, which has its own session login.
UNGUARDED = frozenset({"health", "ready", "metrics", "runs-dashboard"})
UNGUARDED_NAMESPACES = frozenset({"admin"})

NO_RULE = None


def required_scope(url_name: str | None, method: str) -> str | None:
    """The scope a key needs for `method` on the endpoint `url_name`;
    ANY_KEY when any key will do; NO_RULE (None) when there is no rule."""
    if url_name in UNGUARDED:
        return ANY_KEY  # /metrics behind METRICS_REQUIRE_AUTH: any key may scrape
    methods = RULES.get(url_name or "")
    if methods is None:
        return NO_RULE
    return methods.get("GET" if method == "HEAD" else method, NO_RULE)
