"""The one small interface every execution backend implements."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from runs.models import Run


class Backend:
    """Hands runs to an executor and takes them back.

    `dispatch` is called inside the transaction that creates the run: a
    backend that must succeed before the run may exist (Kubernetes) does its
    work there and raises BackendUnavailable to roll the run back; one that
    may retry later (Redis) registers `transaction.on_commit` and leaves the
    run pending when it cannot reach its service.
    """

    name = "base"
    # True when the backend sends after the commit and finds what it failed
    # to send on its own (`send_handed_over`): runs waiting for a gate may
    # then be handed over many in one statement (runs.admission).
    sends_after_commit = False

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def dispatch(self, run: Run) -> None:
        raise NotImplementedError

    def dispatch_many(self, runs: list[Run]) -> None:
        """`dispatch` for runs created together in one transaction; a backend
        that can hand them over in fewer round trips does so."""
        for run in runs:
            self.dispatch(run)

    def prepare_dispatch(self, runs: list[Run]) -> None:
        """Build now, where the backend can, what dispatching these held runs
        will send, for `dispatch_opened` to find at the instant their time
        gate opens (a schedule's runs, made ahead of their tick). Keeping
        nothing is correct: `dispatch_opened` then builds it."""

    def dispatch_opened(self, run_ids: list[str]) -> None:
        """`dispatch_many` for runs, given by id, whose time gate this
        transaction has just cleared (runs.admission)."""
        self.dispatch_many(list(Run.objects.filter(pk__in=run_ids)))

    def send_handed_over(self, runs: list[Run]) -> None:
        """For backends with `sends_after_commit`: send these runs, whose
        handover has just committed; never raises."""
        raise NotImplementedError

    def cancel(self, run: Run) -> None:
        """Stop the run's work. Called after the cancel is committed; must not raise."""
        raise NotImplementedError

    def ensure_dispatched(self, run: Run) -> bool:
        """Hand a pending run to its executor again if the executor lost it
        (a dispatch that failed, a queue that was wiped). Idempotent: never
        makes the executor hold the run twice. True when it was sent again."""
        raise NotImplementedError

    def lost_running(self, runs: list[Run]) -> list[Run]:
        """Of these running runs, those no worker or Job holds any more. Reads
        only; a backend that cannot tell names none."""
        return []

    def release_lost(self, run: Run) -> dict[str, Any] | None:
        """Deal with a running run that `lost_running` named twice, a lease
        period apart. None when it was handed back for another attempt;
        otherwise the error the run fails with."""
        return {"code": "backend_lost", "message": f"the {self.mode} backend lost the run"}

    def describe(self, run: Run) -> dict[str, Any] | None:
        """What `dispatch` would send for this (unsaved) run, for plan mode."""
        raise NotImplementedError

    def plan_steps(self, run: Run) -> list[str]:
        return [f"hand the run to the {self.mode} backend"]


class NullBackend(Backend):
    """Records runs and dispatches nothing: runs stay pending until an
    external worker drives them over HTTP."""

    name = "null"

    def dispatch(self, run: Run) -> None:
        return None

    def cancel(self, run: Run) -> None:
        return None

    def ensure_dispatched(self, run: Run) -> bool:
        return False

    def describe(self, run: Run) -> dict[str, Any] | None:
        return {"backend": self.name, "mode": self.mode, "runId": str(run.id)}

    def plan_steps(self, run: Run) -> list[str]:
        return [f"no {self.mode} executor is configured: the run waits for an external worker"]


@cache
def _backend(mode: str, dotted_path: str) -> Backend:
    return import_string(dotted_path)(mode)


def get_backend(mode: str) -> Backend:
    return _backend(mode, settings.ORCHESTRATOR_BACKENDS[mode])
