"""The scopes an API key may hold; each endpoint needs one (see `tenants.rules`)."""

from __future__ import annotations

RUNS_READ = "runs:read"
RUNS_WRITE = "runs:write"
RUNS_REPORT = "runs:report"
SCHEDULES_READ = "schedules:read"
SCHEDULES_WRITE = "schedules:write"
WEBHOOKS_READ = "webhooks:read"
WEBHOOKS_WRITE = "webhooks:write"
KEYS_MANAGE = "keys:manage"
AUDIT_READ = "audit:read"

ALL = (
    RUNS_READ,
    RUNS_WRITE,
    RUNS_REPORT,
    SCHEDULES_READ,
    SCHEDULES_WRITE,
    WEBHOOKS_READ,
    WEBHOOKS_WRITE,
    KEYS_MANAGE,
    AUDIT_READ,
)
