"""Auth and rate limiting in the OpenAPI document: the schemes, and the
401 and 429 answers that any protected operation can give."""

from __future__ import annotations

from typing import Any

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (ORCHESTRATOR_API_KEY), or a run's worker token where it applies",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "streamToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "From POST /runs/{run_id}/stream-token; opens that run's event stream only",
    },
}
API_KEY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_STREAM_PATH = "/runs/{run_id}/events"
# The error shape of schemas/orchestrator/run.schema.json (`$defs/errorResponse`),
# as the wire-schema hook names its component; written out so that this
# module, like the middleware it documents, imports no app.
ERROR_RESPONSE = {"$ref": "#/components/schemas/ErrorResponse"}
RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "required": True, "description": "seconds"}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def add_security(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook."""
    result.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    result["security"] = API_KEY
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if path == _STREAM_PATH:
                operation["security"] = [*API_KEY, {"streamToken": []}]
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "400",
                {
                    "description": "a bad parameter (U+0000 in the query among them) or Host header",
                    "content": _json(),
                },
            )
            unavailable = responses.setdefault(
                "503",
                {"description": "the database is unreachable or not migrated", "content": _json()},
            )
            # Every 503 says when to try again.
            unavailable.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
            responses.setdefault(
                "401", {"description": "missing, wrong or out-of-scope credential", "content": _json()}
            )
            responses.setdefault(
                "429",
                {
                    "description": "rate limit reached; retry after Retry-After seconds",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": _json(),
                },
            )
    return result


def _json() -> dict[str, Any]:
    return {"application/json": {"schema": ERROR_RESPONSE}}
