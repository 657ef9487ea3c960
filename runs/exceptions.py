"""Domain errors raised by the service layer; the API maps each to one status."""

from __future__ import annotations

from orchestrator.errors import APIError


class OrchestratorError(APIError):
    """A rule of the run service refused the request."""


class RunNotFound(OrchestratorError):
    status_code = 404
    code = "run_not_found"

    def __init__(self) -> None:
        super().__init__("run not found")


class InvalidTransition(OrchestratorError):
    status_code = 409
    code = "invalid_transition"

    def __init__(self, current: str, new: str) -> None:
        super().__init__("invalid status transition", details={"from": current, "to": new})
        self.extra = {"from": current, "to": new}
        self.current = current
        self.new = new


class RunFinished(InvalidTransition):
    """A checkpoint for a run that can no longer change."""

    code = "run_finished"

    def __init__(self, status: str) -> None:
        super().__init__(status, status)
        self.message = "run already finished"
        self.args = (self.message,)
        self.details = {"status": status}
        self.extra = {"status": status}


class IdempotencyConflict(OrchestratorError):
    status_code = 409
    code = "idempotency_conflict"

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "Idempotency-Key was already used with a different request body",
            details={"runId": run_id},
        )


class SchemaViolation(OrchestratorError):
    status_code = 422
    code = "validation_error"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("request does not match the schema", details={"fields": fields})


class BadParameter(OrchestratorError):
    status_code = 400
    code = "bad_parameter"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"invalid parameter {name}: {message}", details={"parameter": name})


class BackendUnavailable(OrchestratorError):
    status_code = 503
    code = "backend_unavailable"

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend unavailable", details={"backend": backend, "reason": reason})


class AttemptSuperseded(OrchestratorError):
    """A write from a worker whose attempt at the run was taken over by another."""

    status_code = 409
    code = "attempt_superseded"

    def __init__(self, attempt: int, current: int) -> None:
        super().__init__(
            "this attempt was superseded", details={"attempt": attempt, "currentAttempt": current}
        )
