"""What a Job or Pod, as the API server shows it, says about its run.

Pure functions over the API's JSON (camelCase dicts), so every mapping is
tested without a cluster and the reconciler only applies the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runs import states

# Waiting reasons that will not heal by themselves: the image is not there.
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
_JOB_FAILURE_CODES = {
    "DeadlineExceeded": "deadline_exceeded",
    "BackoffLimitExceeded": "backoff_limit_exceeded",
}


@dataclass(frozen=True)
class Verdict:
    status: str
    error: dict[str, Any] | None = None


def job_verdict(job: dict[str, Any], pods: Iterable[dict[str, Any]] = ()) -> Verdict | None:
    """completed/failed from the Job's conditions, running once a pod is ready;
    None while there is nothing to report. `pods` (the Job's pods) only refine
    a failure: an OOMKilled container explains a BackoffLimitExceeded."""
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conditions:
        return Verdict(states.COMPLETED)
    if "Failed" in conditions:
        cond = conditions["Failed"]
        reason = cond.get("reason") or "Failed"
        message = cond.get("message") or f"Job failed: {reason}"
        if reason != "DeadlineExceeded":
            oom = _oom_killed(pods)
            if oom is not None:
                return Verdict(states.FAILED, oom)
        code = _JOB_FAILURE_CODES.get(reason, "job_failed")
        return Verdict(states.FAILED, {"code": code, "message": message, "reason": reason})
    if (status.get("ready") or 0) > 0:
        return Verdict(states.RUNNING)
    return None


def is_failed(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Failed" and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def pod_verdict(pod: dict[str, Any]) -> Verdict | None:
    """running when a container runs; failed at once when its image cannot be
    pulled (the Job would wait for it until its deadline). Other pod failures
    are left to the Job, which may retry them."""
    status = pod.get("status") or {}
    for cs in _container_statuses(status):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            reason = waiting["reason"]
            detail = waiting.get("message") or f"cannot pull image {cs.get('image') or ''}".strip()
            return Verdict(
                states.FAILED,
                {"code": "image_pull_failed", "message": f"{reason}: {detail}", "reason": reason},
            )
    if status.get("phase") == "Running":
        return Verdict(states.RUNNING)
    return None


def job_deleted_error(job_name: str) -> dict[str, Any]:
    return {
        "code": "job_deleted",
        "message": f"Job {job_name} was deleted before the run finished",
        "reason": "JobDeleted",
    }


def _container_statuses(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _oom_killed(pods: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    for pod in pods:
        for cs in _container_statuses(pod.get("status") or {}):
            for key in ("state", "lastState"):
                terminated = (cs.get(key) or {}).get("terminated") or {}
                if terminated.get("reason") == "OOMKilled":
                    return {
                        "code": "oom_killed",
                        "message": f"container {cs.get('name')} was killed for running out of memory "
                        f"(exit code {terminated.get('exitCode')})",
                        "reason": "OOMKilled",
                    }
    return None


def newest_timestamp(obj: dict[str, Any]) -> datetime | None:
    """The latest moment the object records a change at (for the reconciler's lag)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    stamps = [
        meta.get("creationTimestamp"),
        meta.get("deletionTimestamp"),
        status.get("startTime"),
        status.get("completionTime"),
        *(c.get("lastTransitionTime") for c in status.get("conditions") or []),
        *(
            state.get(key)
            for cs in _container_statuses(status)
            for state in ((cs.get("state") or {}).values())
            if isinstance(state, dict)
            for key in ("startedAt", "finishedAt")
        ),
    ]
    parsed = [parse_timestamp(s) for s in stamps if isinstance(s, str)]
    return max((p for p in parsed if p is not None), default=None)


def parse_timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
