"""The reconciler follows Jobs and Pods over real watches and keeps runs in step."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from runs import services
from runs.k8s.manifests import JobOptions, build_job
from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import DeleteCall, FakeKubeAPI
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}


def failed_job(reason: str, message: str = "") -> dict:
    return {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}


def container(state: dict, **extra: object) -> dict:
    return {
        "name": "run",
        "image": "busybox",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
        **extra,
    }


def start_run(api, spec: dict | None = None) -> tuple[str, str]:
    response = api.post("/runs?mode=k8s", {"spec": spec or {"image": "busybox"}})
    assert response.status_code == 201, response.content
    run_id = response.json()["runId"]
    return run_id, f"run-{run_id}"


def status_of(run_id: str) -> str:
    return Run.objects.get(pk=run_id).status


def run_becomes(run_id: str, status: str) -> Run:
    return wait_for(lambda: (run := Run.objects.get(pk=run_id)).status == status and run)


def test_a_running_pod_makes_the_run_running(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)

    cluster.add_pod_for_job(NS, job, phase="Running", container_statuses=[container({"running": {}})])

    run = run_becomes(run_id, "running")
    assert run.started_at is not None


def test_a_complete_job_completes_the_run(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)

    cluster.set_job_status(NS, job, COMPLETE)

    run = run_becomes(run_id, "completed")
    assert run.error is None and run.finished_at is not None
    assert run.started_at is not None, "a Job never seen running still goes through running"
    lag = REGISTRY.get_sample_value("orchestrator_reconciler_lag_seconds")
    assert lag is not None and 0 <= lag < 60


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_an_image_that_cannot_be_pulled_fails_the_run_and_removes_the_job(
    api, cluster: FakeKubeAPI, reconciler, reason: str
) -> None:
    run_id, job = start_run(api, {"image": "nope/missing:1"})

    waiting = {"waiting": {"reason": reason, "message": 'Back-off pulling image "nope/missing:1"'}}
    cluster.add_pod_for_job(NS, job, phase="Pending", container_statuses=[container(waiting)])

    run = run_becomes(run_id, "failed")
    assert run.error["code"] == "image_pull_failed"
    assert run.error["reason"] == reason
    assert "nope/missing:1" in run.error["message"]
    assert cluster.wait_for(lambda: DeleteCall("jobs", NS, job, "Background") in cluster.deletes)


def test_an_oom_killed_container_fails_the_run_with_oom_killed(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)
    terminated = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    cluster.add_pod_for_job(NS, job, phase="Failed", container_statuses=[container(terminated)])

    cluster.set_job_status(
        NS, job, failed_job("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    )

    run = run_becomes(run_id, "failed")
    assert run.error["code"] == "oom_killed"
    assert run.error["reason"] == "OOMKilled"


@pytest.mark.parametrize(
    ("reason", "code"),
    [("DeadlineExceeded", "deadline_exceeded"), ("BackoffLimitExceeded", "backoff_limit_exceeded")],
)
def test_a_failed_job_fails_the_run_with_its_reason(
    api, cluster: FakeKubeAPI, reconciler, reason: str, code: str
) -> None:
    run_id, job = start_run(api, {"image": "busybox", "timeoutSeconds": 5})

    cluster.set_job_status(NS, job, failed_job(reason, "Job was active longer than specified deadline"))

    run = run_becomes(run_id, "failed")
    assert run.error == {
        "code": code,
        "message": "Job was active longer than specified deadline",
        "reason": reason,
    }


def test_a_job_deleted_behind_our_back_fails_its_run(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)

    cluster.delete_job_behind_our_back(NS, job)

    run = run_becomes(run_id, "failed")
    assert run.error["code"] == "job_deleted"
    # The orphaning delete left the token Secret behind; the reconciler removes it.
    assert cluster.wait_for(lambda: cluster.secrets(NS) == [])


def test_a_finished_job_removed_by_its_ttl_leaves_the_run_alone(
    api, cluster: FakeKubeAPI, reconciler
) -> None:
    run_id, job = start_run(api)
    cluster.set_job_status(NS, job, COMPLETE)
    run_becomes(run_id, "completed")

    cluster.delete_job_behind_our_back(NS, job)  # as the TTL controller does

    other_id, other_job = start_run(api)  # an event after it, to know the delete was seen
    cluster.set_job_status(NS, other_job, COMPLETE)
    run_becomes(other_id, "completed")
    assert Run.objects.get(pk=run_id).status == "completed"


def test_a_job_that_appears_for_a_canceled_run_is_deleted(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)
    services.cancel_run(run_id)
    assert cluster.wait_for(lambda: cluster.get_job(NS, job) is None)
    deletes_before = len(cluster.deletes)

    # A dispatch retried after the cancel creates the Job again.
    cluster.create_job(NS, build_job(run_id, {"image": "busybox"}, JobOptions(namespace=NS)))

    assert cluster.wait_for(lambda: cluster.get_job(NS, job) is None)
    assert DeleteCall("jobs", NS, job, "Background") in cluster.deletes[deletes_before:]
    assert status_of(run_id) == "canceled"


def test_the_watch_resumes_after_a_dropped_connection(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)
    watches_before = cluster.request_count("GET", "/", watch=True)

    cluster.drop_watches()
    cluster.set_job_status(NS, job, COMPLETE)  # happens while no watch is open

    run_becomes(run_id, "completed")
    assert cluster.request_count("GET", "/", watch=True) > watches_before
    assert reconciler.relists == {"jobs": 1, "pods": 1}  # resumed from its resourceVersion, no relist


def test_the_reconciler_lists_again_after_410_gone(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)
    cluster.add_pod_for_job(NS, job, phase="Pending")
    wait_for(lambda: reconciler.resource_versions["pods"] not in (None, "0"))
    # A change the reconciler does not watch moves the cluster on past its resourceVersion...
    cluster.create_job(NS, {"metadata": {"name": "not-ours"}})
    # ...and compaction then leaves that resourceVersion too old to resume from.
    cluster.compact()
    cluster.drop_watches()
    cluster.set_job_status(NS, job, COMPLETE)

    run_becomes(run_id, "completed")
    wait_for(lambda: reconciler.relists["jobs"] >= 2 and reconciler.relists["pods"] >= 2)


def test_the_reconciler_rides_out_an_api_server_outage(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)

    cluster.stop()
    cluster.set_job_status(NS, job, COMPLETE)  # state changes while it is unreachable
    cluster.start()

    run_becomes(run_id, "completed")


def test_resync_fails_a_run_whose_job_vanished_while_nobody_watched(api, cluster: FakeKubeAPI) -> None:
    from runs.k8s.reconciler import Reconciler

    run_id, job = start_run(api)
    cluster.delete_job_behind_our_back(NS, job)

    Reconciler(orphan_grace_seconds=0).resync()

    run = Run.objects.get(pk=run_id)
    assert run.status == "failed" and run.error["code"] == "job_deleted"


def test_resync_removes_an_old_job_without_a_run(cluster: FakeKubeAPI) -> None:
    from runs.k8s.reconciler import Reconciler

    orphan_id = "00000000-0000-4000-8000-000000000001"
    cluster.create_job(NS, build_job(orphan_id, {"image": "busybox"}, JobOptions(namespace=NS)))

    Reconciler(orphan_grace_seconds=3600).resync()
    assert cluster.get_job(NS, f"run-{orphan_id}") is not None  # young: its run may be committing

    Reconciler(orphan_grace_seconds=-1).resync()
    assert cluster.get_job(NS, f"run-{orphan_id}") is None


def test_resync_applies_what_the_watch_missed(api, cluster: FakeKubeAPI) -> None:
    from runs.k8s.reconciler import Reconciler

    run_id, job = start_run(api)
    cluster.set_job_status(NS, job, failed_job("DeadlineExceeded", "too slow"))

    Reconciler().resync()

    assert Run.objects.get(pk=run_id).error["code"] == "deadline_exceeded"


def test_resync_leaves_the_jobs_of_another_installation_alone(cluster: FakeKubeAPI) -> None:
    from runs.k8s.reconciler import Reconciler

    theirs = "00000000-0000-4000-8000-000000000002"
    cluster.create_job(
        NS, build_job(theirs, {"image": "busybox"}, JobOptions(namespace=NS, instance="staging"))
    )

    Reconciler(orphan_grace_seconds=-1).resync()

    assert cluster.get_job(NS, f"run-{theirs}") is not None


def test_a_job_that_only_copies_a_runs_label_cannot_change_it(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id, job = start_run(api)
    impostor = build_job(run_id, {"image": "busybox"}, JobOptions(namespace=NS))
    impostor["metadata"]["name"] = "impostor"
    cluster.create_job(NS, impostor)
    cluster.set_job_status(NS, "impostor", failed_job("BackoffLimitExceeded"))
    cluster.add_pod_for_job(NS, "impostor", phase="Running")

    cluster.set_job_status(NS, job, COMPLETE)  # the real Job, after the impostor's events

    run = run_becomes(run_id, "completed")
    assert run.error is None
