"""A k8s run whose concurrency key is full gets its Job when a slot frees."""

from __future__ import annotations

import pytest

from journal.models import Entry
from runs import services
from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
BODY = {"spec": {"image": "busybox"}, "concurrency": {"key": "tenant-a", "limit": 1}}


def test_the_next_job_is_created_when_the_running_one_completes(
    api, cluster: FakeKubeAPI, reconciler
) -> None:
    first = api.post("/runs?mode=k8s", BODY).json()["runId"]
    second = api.post("/runs?mode=k8s", BODY).json()["run"]
    assert second["waitingFor"] == {"reason": "concurrency", "key": "tenant-a", "limit": 1}
    assert cluster.get_job(NS, f"run-{second['id']}") is None

    cluster.set_job_status(NS, f"run-{first}", COMPLETE)

    # The Job is created inside the completing transaction: the run is read once that commits.
    wait_for(lambda: Run.objects.get(pk=second["id"]).waiting_for is None)
    assert cluster.get_job(NS, f"run-{second['id']}") is not None


def test_a_job_the_cluster_refuses_at_handover_fails_after_the_finish_that_freed_the_slot(
    api, cluster: FakeKubeAPI, reconciler
) -> None:
    first = api.post("/runs?mode=k8s", BODY).json()["runId"]
    refused = api.post("/runs?mode=k8s", BODY).json()["runId"]
    behind = api.post("/runs?mode=k8s", BODY).json()["runId"]
    cluster.fail_requests("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", code=422)

    cluster.set_job_status(NS, f"run-{first}", COMPLETE)

    wait_for(lambda: Run.objects.get(pk=refused).status == "failed")
    assert Run.objects.get(pk=refused).error["code"] == "dispatch_rejected"
    # Each in a commit of its own, in that order: the finish, then the refusal.
    order = list(
        Entry.objects.filter(run_id__in=[first, refused], type__in=["run.completed", "run.failed"])
        .order_by("id")
        .values_list("type", flat=True)
    )
    assert order == ["run.completed", "run.failed"]
    # The slot the refused run would have had goes to the next in line.
    wait_for(lambda: Run.objects.get(pk=behind).waiting_for is None)
    assert cluster.get_job(NS, f"run-{behind}") is not None


def test_a_key_shared_by_both_modes_hands_a_freed_redis_slot_to_an_older_k8s_run(
    api, cluster: FakeKubeAPI, queue
) -> None:
    body = {"concurrency": {"key": "tenant-b", "limit": 1}}
    redis_run = api.post("/runs?mode=redis", {**body, "spec": {"task": "sleep"}}).json()["runId"]
    k8s_run = api.post("/runs?mode=k8s", {**body, "spec": {"image": "busybox"}}).json()["run"]
    later = api.post("/runs?mode=redis", {**body, "spec": {"task": "sleep"}}).json()["runId"]
    assert k8s_run["waitingFor"]["reason"] == "concurrency"

    services.set_run_status(redis_run, "running")
    services.set_run_status(redis_run, "completed")

    # The oldest waiting run gets the slot, though of another backend than the finish's.
    assert Run.objects.get(pk=k8s_run["id"]).waiting_for is None
    assert cluster.get_job(NS, f"run-{k8s_run['id']}") is not None
    assert Run.objects.get(pk=later).waiting_for["reason"] == "concurrency"
