"""Runs made for tests the way every writer makes them: through the service layer.

Tests of the API itself make theirs with the `make_run` fixture
(tests/conftest.py), which goes through `POST /runs` and returns the wire form.
"""

from __future__ import annotations

from typing import Any

from runs import services
from runs.models import Run

SLEEP = {"task": "sleep", "input": {}}


def new_run(
    mode: str = "redis",
    *,
    spec: dict[str, Any] | None = None,
    owner: str = "",
    metadata: dict[str, Any] | None = None,
    **columns: Any,
) -> Run:
    """A run created by `services.create_run` (a sleep task unless `spec` says
    otherwise); `columns` are then written as they are, for a state no
    service makes on demand (a `created_at` long past)."""
    run, _ = services.create_run(
        mode=mode, spec=dict(SLEEP) if spec is None else spec, owner=owner, metadata=metadata
    )
    if columns:
        Run.objects.filter(pk=run.pk).update(**columns)
        run.refresh_from_db()
    return run
