"""k8s mode: a run's priority names its pod's PriorityClass when the
operator mapped one (K8S_PRIORITY_CLASSES), and nothing otherwise."""

from __future__ import annotations

import pytest

from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI

pytestmark = pytest.mark.django_db

SPEC = {"image": "busybox"}


def pod_spec(cluster: FakeKubeAPI, run_id: str) -> dict:
    job = cluster.get_job(NS, f"run-{run_id}")
    assert job is not None
    return job["spec"]["template"]["spec"]


def test_a_mapped_priority_sets_the_pods_priority_class(api, cluster: FakeKubeAPI, settings) -> None:
    settings.K8S_PRIORITY_CLASSES = {9: "orchestrator-urgent", 0: "orchestrator-batch"}

    urgent = api.post("/runs?mode=k8s", {"spec": SPEC, "priority": 9}).json()["run"]
    plain = api.post("/runs?mode=k8s", {"spec": SPEC}).json()["run"]

    assert urgent["priority"] == 9
    assert pod_spec(cluster, urgent["id"])["priorityClassName"] == "orchestrator-urgent"
    assert "priorityClassName" not in pod_spec(cluster, plain["id"]), "5 is not mapped: the cluster's default"
    plan = api.post("/runs?mode=plan&target=k8s", {"spec": SPEC, "priority": 0}).json()["plan"]
    assert plan["dispatch"]["spec"]["template"]["spec"]["priorityClassName"] == "orchestrator-batch"


def test_without_a_mapping_priority_sets_nothing_in_the_cluster(api, cluster: FakeKubeAPI, settings) -> None:
    settings.K8S_PRIORITY_CLASSES = {}

    run = api.post("/runs?mode=k8s", {"spec": SPEC, "priority": 9}).json()["run"]

    assert "priorityClassName" not in pod_spec(cluster, run["id"])
    steps = api.post("/runs?mode=plan&target=k8s", {"spec": SPEC, "priority": 9}).json()["plan"]["steps"]
    assert any("no PriorityClass is mapped" in step for step in steps)
