"""POST /runs?mode=k8s creates the run's Job inside the create transaction."""

from __future__ import annotations

import json

import pytest

from runs import tokens
from runs.backends import get_backend
from runs.k8s.manifests import RUN_ID_LABEL
from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import DeleteCall, FakeKubeAPI
from tests.servers import free_port

pytestmark = pytest.mark.django_db

SPEC = {
    "image": "ghcr.io/acme/train:1.2",
    "command": ["python", "train.py"],
    "env": {"LR": "0.1"},
    "resources": {"limits": {"memory": "512Mi"}},
    "maxAttempts": 2,
    "timeoutSeconds": 600,
}


def create(api, spec=SPEC, **headers):
    return api.post("/runs?mode=k8s", {"spec": spec, "metadata": {"team": "ml"}}, **headers)


def test_creating_a_k8s_run_creates_its_job(api, cluster: FakeKubeAPI) -> None:
    response = create(api)

    assert response.status_code == 201, response.content
    run_id = response.json()["runId"]
    job = cluster.get_job(NS, f"run-{run_id}")
    assert job is not None
    assert job["metadata"]["labels"][RUN_ID_LABEL] == run_id
    assert job["spec"]["backoffLimit"] == 0, "each attempt is a Job of its own: no retries inside one"
    assert job["spec"]["activeDeadlineSeconds"] == 600
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/acme/train:1.2"
    assert container["command"] == ["python", "train.py"]
    assert response.json()["run"]["status"] == "pending"


def test_the_pod_token_lives_in_a_secret_owned_by_the_job(api, cluster: FakeKubeAPI) -> None:
    run_id = create(api).json()["runId"]
    job = cluster.get_job(NS, f"run-{run_id}")
    secret = cluster.get_secret(NS, f"run-{run_id}-token")

    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    token = secret["stringData"]["token"]
    assert tokens.verify(token, kind=tokens.WORKER, run_id=run_id).run_id == run_id
    assert token not in str(job)


def test_dispatching_twice_keeps_one_job(api, cluster: FakeKubeAPI) -> None:
    run = Run.objects.get(pk=create(api).json()["runId"])
    backend = get_backend("k8s")

    backend.dispatch(run)  # a retried dispatch meets 409 AlreadyExists: success

    assert len(cluster.jobs(NS)) == 1
    assert len(cluster.secrets(NS)) == 1
    assert cluster.request_count("POST", f"/apis/batch/v1/namespaces/{NS}/jobs") == 2
    assert backend.ensure_dispatched(run) is False


def test_ensure_dispatched_recreates_a_lost_job(api, cluster: FakeKubeAPI) -> None:
    run = Run.objects.get(pk=create(api).json()["runId"])
    cluster.delete_job_behind_our_back(NS, f"run-{run.id}")

    assert get_backend("k8s").ensure_dispatched(run) is True
    assert cluster.get_job(NS, f"run-{run.id}") is not None


def test_an_unreachable_cluster_answers_503_and_records_nothing(api, cluster: FakeKubeAPI, settings) -> None:
    settings.K8S_API_HOST = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    response = create(api)

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "backend_unavailable"
    assert Run.objects.count() == 0


def test_a_cluster_answering_503_records_nothing(api, cluster: FakeKubeAPI) -> None:
    cluster.set_unavailable()

    response = create(api)

    assert response.status_code == 503
    assert Run.objects.count() == 0


def test_a_failed_secret_create_removes_the_job_and_records_nothing(api, cluster: FakeKubeAPI) -> None:
    cluster.fail_requests("POST", f"/api/v1/namespaces/{NS}/secrets", code=500)

    response = create(api)

    assert response.status_code == 503
    assert Run.objects.count() == 0
    assert cluster.jobs(NS) == []


def test_a_spec_the_cluster_rejects_is_a_422(api, cluster: FakeKubeAPI) -> None:
    cluster.fail_requests("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", code=422)

    response = create(api)

    assert response.status_code == 422
    assert "spec" in response.json()["details"]["fields"]
    assert Run.objects.count() == 0


def test_an_idempotent_replay_creates_no_second_job(api, cluster: FakeKubeAPI) -> None:
    first = create(api, **{"Idempotency-Key": "k-1"})
    again = create(api, **{"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert len(cluster.jobs(NS)) == 1


def test_cancel_deletes_the_job_in_the_background(
    api, cluster: FakeKubeAPI, django_capture_on_commit_callbacks
) -> None:
    run_id = create(api).json()["runId"]
    cluster.add_pod_for_job(NS, f"run-{run_id}")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/runs/{run_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert DeleteCall("jobs", NS, f"run-{run_id}", "Background") in cluster.deletes
    assert cluster.jobs(NS) == [] and cluster.pods(NS) == [] and cluster.secrets(NS) == []


def test_cancel_of_a_run_whose_job_is_gone_still_succeeds(
    api, cluster: FakeKubeAPI, django_capture_on_commit_callbacks
) -> None:
    run_id = create(api).json()["runId"]
    cluster.delete_job_behind_our_back(NS, f"run-{run_id}")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/runs/{run_id}")

    assert response.status_code == 200
    assert Run.objects.get(pk=run_id).status == "canceled"
    assert DeleteCall("jobs", NS, f"run-{run_id}", "Background") in cluster.deletes
    assert cluster.secrets(NS) == []  # the Secret the orphaning delete left behind


def test_plan_returns_the_exact_job_manifest_and_creates_nothing(api, cluster: FakeKubeAPI) -> None:
    response = api.post("/runs?mode=plan&target=k8s", {"spec": SPEC})

    assert response.status_code == 200, response.content
    plan = response.json()["plan"]
    manifest = plan["dispatch"]
    assert plan["target"] == "k8s"
    assert cluster.jobs(NS) == [] and cluster.secrets(NS) == []
    assert Run.objects.count() == 0
    planned_id = plan["run"]["id"]
    assert manifest["metadata"]["name"] == f"run-{planned_id}"
    assert manifest["metadata"]["namespace"] == NS

    # The manifest a real create sends is the same, but for the run id.
    run_id = create(api).json()["runId"]
    created = cluster.get_job(NS, f"run-{run_id}")
    sent = {k: created[k] for k in ("apiVersion", "kind", "spec")}
    sent["metadata"] = {k: created["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}
    assert json.dumps(manifest, sort_keys=True).replace(planned_id, run_id) == json.dumps(
        sent, sort_keys=True
    )


def test_plan_never_carries_a_token(api, cluster: FakeKubeAPI) -> None:
    manifest = api.post("/runs?mode=plan&target=k8s", {"spec": SPEC}).json()["plan"]["dispatch"]
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert "value" not in env["ORCHESTRATOR_TOKEN"]
    assert env["ORCHESTRATOR_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_a_running_run_is_never_dispatched_again(api, cluster: FakeKubeAPI) -> None:
    run_id = create(api).json()["runId"]
    api.patch(f"/runs/{run_id}", {"status": "running"})
    cluster.delete_job_behind_our_back(NS, f"run-{run_id}")

    assert get_backend("k8s").ensure_dispatched(Run.objects.get(pk=run_id)) is False
    assert cluster.jobs(NS) == []


def test_the_pod_token_outlives_a_long_timeout(api, cluster: FakeKubeAPI, settings) -> None:
    settings.WORKER_TOKEN_TTL_SECONDS = 3600
    run_id = create(api, {"image": "busybox", "timeoutSeconds": 86400}).json()["runId"]
    token = cluster.get_secret(NS, f"run-{run_id}-token")["stringData"]["token"]

    expires = tokens.verify(token, kind=tokens.WORKER, run_id=run_id).expires_at
    assert (expires - Run.objects.get(pk=run_id).created_at).total_seconds() > 86400
