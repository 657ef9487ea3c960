"""Errors of the schedule service; the API maps each to one status."""

from __future__ import annotations

from orchestrator.errors import APIError


class ScheduleNotFound(APIError):
    status_code = 404
    code = "schedule_not_found"

    def __init__(self) -> None:
        super().__init__("schedule not found")
