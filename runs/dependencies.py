"""Dependencies: a run waits `pending` until the runs it names have completed.

`dependsOn` is fixed at creation and may name only runs that exist, so a
run can never be part of a cycle (the one way to make one, naming itself,
is an id that does not exist yet). Each edge is a `RunDependency` row,
indexed by the run depended on: when a run ends, its own transaction finds
the runs waiting for it and opens their gate (all of their dependencies
completed) or fails them with `dependency_failed` (one failed or was
canceled), and that failure goes down the chain in the same transaction.
No pending run is ever looked at for any other reason.

Creation and finishing never miss each other: the creating transaction
reads its dependencies' statuses `FOR SHARE`, which waits for a finishing
transaction (it holds the row `FOR UPDATE`) to commit, and holds a
finisher back until the new edges are committed, so the finisher's look
for waiting runs sees them.

Every run a finish changes is locked before the finish's journal entry
(`lock_followers`), as the journal's clock requires (journal.services).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection
from django.db.models import Subquery

from runs import states
from runs.exceptions import SchemaViolation
from runs.models import Run, RunDependency

DEPENDENCIES = "dependencies"
DEPENDENCY_FAILED = "dependency_failed"
MAX_DEPENDENCIES = 100
FIELD = "dependsOn"


def parse_ids(values: Iterable[Any] | None) -> list[uuid.UUID]:
    """The ids of `dependsOn`, in order and without repeats; a 422 for anything else."""
    ids: list[uuid.UUID] = []
    for value in values or ():
        try:
            run_id = uuid.UUID(str(value))
        except ValueError:
            raise SchemaViolation({FIELD: [f"{value!r} is not a run id"]}) from None
        if run_id not in ids:
            ids.append(run_id)
    if len(ids) > MAX_DEPENDENCIES:
        raise SchemaViolation({FIELD: [f"at most {MAX_DEPENDENCIES} runs"]})
    return ids


# FOR SHARE: Django's select_for_update only takes the exclusive locks, which
# would make every run created after the same dependency wait for the others.
_SHARE_SQL = "SELECT id, status, owner FROM runs_run WHERE id = ANY(%s) ORDER BY id FOR SHARE"


def statuses(ids: list[uuid.UUID], *, owner: str | None = None, lock: bool = True) -> dict[uuid.UUID, str]:
    """{id: status} of the runs depended on, read `FOR SHARE` with `lock`
    (see the module docstring). An id that names no run (or, for a
    credential limited to `owner`, none of that owner's) is a 422."""
    if not ids:
        return {}
    if lock and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SHARE_SQL, [list(ids)])
            rows = cursor.fetchall()
    else:
        rows = list(Run.objects.filter(pk__in=ids).values_list("id", "status", "owner"))
    found = {run_id: status for run_id, status, run_owner in rows if owner is None or run_owner == owner}
    unknown = [str(run_id) for run_id in ids if run_id not in found]
    if unknown:
        raise SchemaViolation({FIELD: [f"no run {run_id}" for run_id in unknown]})
    return found


def failed_dependency(found: dict[uuid.UUID, str]) -> uuid.UUID | None:
    """A dependency that failed or was canceled, if any."""
    return next((run_id for run_id, status in found.items() if status in _BROKEN), None)


def gate_for(remaining: list[Any]) -> dict[str, Any] | None:
    """The `waitingFor` of a run whose dependencies `remaining` have not completed yet."""
    if not remaining:
        return None
    return {"reason": DEPENDENCIES, "runIds": [str(run_id) for run_id in remaining]}


def record_edges(run: Run, ids: list[uuid.UUID]) -> None:
    RunDependency.objects.bulk_create([RunDependency(run=run, depends_on_id=run_id) for run_id in ids])


def remaining(run: Run) -> list[uuid.UUID]:
    """The run's dependencies that have not completed, in the order given."""
    if not run.depends_on:
        return []
    open_ids = set(
        RunDependency.objects.filter(run=run)
        .exclude(depends_on__status=states.COMPLETED)
        .values_list("depends_on_id", flat=True)
    )
    return [run_id for run_id in map(uuid.UUID, run.depends_on) if run_id in open_ids]


def dependency_error(dependency_id: Any, status: str) -> dict[str, Any]:
    return {
        "code": DEPENDENCY_FAILED,
        "message": f"run {dependency_id}, which this run depends on, is {status}",
        "dependencyId": str(dependency_id),
    }


_BROKEN = (states.FAILED, states.CANCELED)


def lock_followers(run: Run, new: str) -> list[Run]:
    """Lock, oldest first, the pending runs a finish of `run` with status `new`
    may change: on completion those waiting for `run`; on a failure or cancel
    every pending run down the chain (they all fail)."""
    if not states.is_final(new) or not RunDependency.objects.filter(depends_on=run).exists():
        return []
    locked: list[Run] = []
    frontier = [run.pk]
    seen = {run.pk}
    while frontier:
        waiting = RunDependency.objects.filter(depends_on_id__in=frontier).values("run_id")
        level = list(
            Run.objects.select_for_update()
            .filter(pk__in=Subquery(waiting), status=states.PENDING)
            .exclude(pk__in=seen)
            .order_by("pk")
        )
        locked.extend(level)
        seen.update(follower.pk for follower in level)
        frontier = [follower.pk for follower in level] if new in _BROKEN else []
    return locked


def release_followers(
    run: Run,
    new: str,
    followers: list[Run],
    *,
    fail: Callable[[Run, dict[str, Any]], None],
    admit: Callable[[Run], None],
) -> None:
    """After `run` ended with `new`: fail its waiting runs (a failure or
    cancel; `fail` takes the chain further down), or open the gate of each
    whose dependencies have now all completed (`admit`)."""
    direct = set(RunDependency.objects.filter(depends_on=run).values_list("run_id", flat=True))
    for follower in followers:
        if follower.pk not in direct:
            continue
        # A failure earlier in this loop may have reached it down another path.
        follower.refresh_from_db(fields=["status", "waiting_for", "not_before"])
        if follower.status != states.PENDING:
            continue
        if new in _BROKEN:
            fail(follower, dependency_error(run.pk, new))
            continue
        if not (follower.is_held and (follower.waiting_for or {}).get("reason") == DEPENDENCIES):
            continue  # another gate first (runAt): admission checks this one when that opens
        left = remaining(follower)
        if left:
            follower.waiting_for = gate_for(left)
            follower.save(update_fields=["waiting_for", "updated_at"])
        else:
            admit(follower)
