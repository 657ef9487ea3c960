from __future__ import annotations

from orchestrator.errors import APIError


class ApiKeyNotFound(APIError):
    status_code = 404
    code = "api_key_not_found"

    def __init__(self) -> None:
        super().__init__("api key not found")


class MissingScope(APIError):
    """403: the credential lacks the scope this request needs."""

    status_code = 403
    code = "missing_scope"

    def __init__(self, scope: str) -> None:
        super().__init__("forbidden", details={"scope": scope})
