"""How a waiting run's reason reads in the admin and the `runs_*` commands,
and the admin's list filter on it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from runs import states
from runs.models import HELD, Run

# Every reason a pending run may wait for, in the order gates are checked.
REASONS = ("runAt", "backoff", "dependencies", "concurrency")


def waiting_text(waiting_for: dict[str, Any] | None) -> str:
    """`backoff until 2026-…`, `runAt until …`, or "-" when the run waits for nothing."""
    if not waiting_for:
        return "-"
    reason = str(waiting_for.get("reason", "?"))
    details = [f"{key} {value}" for key, value in waiting_for.items() if key != "reason"]
    return " ".join([reason, *details])


class WaitingForFilter(admin.SimpleListFilter):
    title = "waiting for"
    parameter_name = "waiting_for"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("any", "any reason"), *((reason, reason) for reason in REASONS), ("none", "nothing")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        value = self.value()
        if value is None:
            return queryset
        if value == "any":
            return queryset.filter(HELD)
        if value == "none":
            return queryset.filter(status=states.PENDING, waiting_for__isnull=True)
        if value in REASONS:
            return queryset.filter(HELD, waiting_for__reason=value)
        return queryset
