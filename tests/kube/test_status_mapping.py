"""What a Job or Pod says about its run, mapping by mapping."""

from __future__ import annotations

import pytest

from runs.k8s.status import Verdict, job_verdict, newest_timestamp, pod_verdict


def job(conditions: list[dict] | None = None, **status: object) -> dict:
    return {"metadata": {"name": "run-x"}, "status": {"conditions": conditions or [], **status}}


def failed(reason: str, message: str = "") -> dict:
    return {"type": "Failed", "status": "True", "reason": reason, "message": message}


def pod(phase: str = "Pending", **container_state: dict) -> dict:
    cs = {"name": "run", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0}
    cs.update(container_state)
    return {"metadata": {"name": "run-x-abcde"}, "status": {"phase": phase, "containerStatuses": [cs]}}


def test_a_complete_job_completes_the_run() -> None:
    assert job_verdict(job([{"type": "Complete", "status": "True"}], succeeded=1)) == Verdict("completed")


def test_a_job_with_a_ready_pod_is_running_and_one_without_says_nothing() -> None:
    assert job_verdict(job(active=1, ready=1)) == Verdict("running")
    assert job_verdict(job(active=1, ready=0)) is None
    assert job_verdict(job([{"type": "Complete", "status": "False"}])) is None


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("DeadlineExceeded", "deadline_exceeded"),
        ("BackoffLimitExceeded", "backoff_limit_exceeded"),
        ("PodFailurePolicy", "job_failed"),
    ],
)
def test_a_failed_job_fails_the_run_with_its_reason(reason: str, code: str) -> None:
    verdict = job_verdict(job([failed(reason, "it broke")]))
    assert verdict is not None and verdict.status == "failed"
    assert verdict.error == {"code": code, "message": "it broke", "reason": reason}


def test_an_oom_killed_container_explains_the_jobs_failure() -> None:
    oom = pod("Failed", state={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    verdict = job_verdict(job([failed("BackoffLimitExceeded")]), [oom])
    assert verdict is not None and verdict.error is not None
    assert verdict.error["code"] == "oom_killed" and verdict.error["reason"] == "OOMKilled"
    assert "137" in verdict.error["message"]


def test_a_deadline_beats_an_earlier_oom() -> None:
    oom = pod("Failed", lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    verdict = job_verdict(job([failed("DeadlineExceeded")]), [oom])
    assert verdict is not None and verdict.error is not None
    assert verdict.error["code"] == "deadline_exceeded"


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"])
def test_a_pod_that_cannot_pull_its_image_fails_the_run(reason: str) -> None:
    verdict = pod_verdict(pod(state={"waiting": {"reason": reason, "message": "no such image"}}))
    assert verdict == Verdict(
        "failed", {"code": "image_pull_failed", "message": f"{reason}: no such image", "reason": reason}
    )


def test_a_pod_waiting_for_its_secret_or_being_created_is_not_a_failure() -> None:
    assert pod_verdict(pod(state={"waiting": {"reason": "CreateContainerConfigError"}})) is None
    assert pod_verdict(pod(state={"waiting": {"reason": "ContainerCreating"}})) is None


def test_a_running_pod_means_a_running_run() -> None:
    assert pod_verdict(pod("Running", state={"running": {"startedAt": "2026-11-24T10:00:00Z"}})) == Verdict(
        "running"
    )


def test_the_newest_timestamp_of_an_object() -> None:
    obj = {
        "metadata": {"creationTimestamp": "2026-11-24T10:00:00Z"},
        "status": {"conditions": [{"lastTransitionTime": "2026-11-24T10:05:00Z"}]},
    }
    assert newest_timestamp(obj).isoformat() == "2026-11-24T10:05:00+00:00"
    assert newest_timestamp({"metadata": {}}) is None
