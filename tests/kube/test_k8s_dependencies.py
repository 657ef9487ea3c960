"""A k8s run that depends on another gets its Job only once that one completes."""

from __future__ import annotations

import pytest

from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "failed": 1}
SPEC = {"image": "busybox"}


def test_the_dependent_job_is_created_when_the_dependency_completes(
    api, cluster: FakeKubeAPI, reconciler
) -> None:
    first = api.post("/runs?mode=k8s", {"spec": SPEC}).json()["runId"]
    second = api.post("/runs?mode=k8s", {"spec": SPEC, "dependsOn": [first]}).json()["run"]
    assert second["waitingFor"] == {"reason": "dependencies", "runIds": [first]}
    assert cluster.get_job(NS, f"run-{second['id']}") is None

    cluster.set_job_status(NS, f"run-{first}", COMPLETE)

    # The Job is created inside the completing transaction: the run is read once that commits.
    wait_for(lambda: Run.objects.get(pk=second["id"]).waiting_for is None)
    assert cluster.get_job(NS, f"run-{second['id']}") is not None


def test_a_failed_dependency_fails_the_dependent_without_a_job(api, cluster: FakeKubeAPI, reconciler) -> None:
    first = api.post("/runs?mode=k8s", {"spec": SPEC}).json()["runId"]
    second = api.post("/runs?mode=k8s", {"spec": SPEC, "dependsOn": [first]}).json()["runId"]

    cluster.set_job_status(NS, f"run-{first}", FAILED)

    failed = wait_for(lambda: (run := Run.objects.get(pk=second)).is_final and run)
    assert failed.status == "failed" and failed.error["code"] == "dependency_failed"
    assert cluster.get_job(NS, f"run-{second}") is None
