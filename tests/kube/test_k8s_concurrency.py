"""A k8s run whose concurrency key is full gets its Job when a slot frees."""

from __future__ import annotations

import pytest

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
