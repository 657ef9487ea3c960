"""Domain errors raised by the service layer; the API maps each to one status."""

from __future__ import annotations

from typing import Any

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

    def __init__(self, current: str, new: str, *, waiting_for: dict[str, Any] | None = None) -> None:
        details: dict[str, Any] = {"from": current, "to": new}
        if waiting_for:
            details["waitingFor"] = waiting_for
        super().__init__("invalid status transition", details=details)
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


class CheckpointKeyConflict(OrchestratorError):
    """A checkpoint key the run already holds (or the batch repeats) for another type or data."""

    status_code = 409
    code = "idempotency_conflict"

    def __init__(self, key: str, checkpoint_id: str | None) -> None:
        details: dict[str, str] = {"key": key}
        if checkpoint_id is not None:
            details["checkpointId"] = checkpoint_id
        super().__init__("checkpoint key was already used with a different type or data", details=details)


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
    """The run's backend cannot take it now; nothing was recorded."""

    status_code = 503
    code = "backend_unavailable"

    def __init__(self, backend: str, message: str, reason: str, *, retry_after: int = 5) -> None:
        # `message` says what is wrong in words ("Kubernetes API not reachable");
        # `reason` is the detail an operator looks up.
        super().__init__(message, details={"backend": backend, "reason": reason})
        self.headers = {"Retry-After": str(max(1, retry_after))}


class AttemptSuperseded(OrchestratorError):
    """A write from a worker whose attempt at the run was taken over by another."""

    status_code = 409
    code = "attempt_superseded"

    def __init__(self, attempt: int, current: int) -> None:
        super().__init__(
            "this attempt was superseded", details={"attempt": attempt, "currentAttempt": current}
        )
