"""The manifests in deploy/k8s parse, fit together, and grant exactly the API calls the code makes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
# Client method verb -> RBAC verb, for the `<verb>_namespaced_<kind>` calls in the code.
_VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch"}
_RESOURCES = {"job": ("batch", "jobs"), "pod": ("", "pods"), "secret": ("", "secrets")}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def the(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def calls_in_code() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every Kubernetes API call under runs/."""
    calls = set()
    for path in (ROOT / "runs").rglob("*.py"):
        for verb, kind in re.findall(
            r"\b(create|read|list|delete|patch)_namespaced_(job|pod|secret)\b", path.read_text()
        ):
            calls.add((*_RESOURCES[kind], _VERBS[verb]))
    # The reconciler watches what it lists through its watch loops.
    from runs.k8s.reconciler import JOBS, PODS

    for resource in (JOBS, PODS):
        group = "batch" if resource == JOBS else ""
        assert (group, resource, "list") in calls
        calls.add((group, resource, "watch"))
    return calls


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert all({"apiVersion", "kind", "metadata"} <= d.keys() for d in documents())


def test_the_role_grants_exactly_the_calls_the_code_makes() -> None:
    role = the("Role", "orchestrator")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == calls_in_code()


def test_the_role_is_bound_to_the_service_account_every_deployment_uses() -> None:
    binding = the("RoleBinding", "orchestrator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "orchestrator",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "orchestrator"}]
    the("ServiceAccount", "orchestrator")
    for name in (
        "orchestrator",
        "orchestrator-reconciler",
        "orchestrator-worker",
        "orchestrator-scheduler",
        "orchestrator-webhooks",
    ):
        assert the("Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"] == "orchestrator"


def test_the_api_deployment_is_ready_on_ready_and_alive_on_health() -> None:
    container = the("Deployment", "orchestrator")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    port = container["ports"][0]
    service = the("Service", "orchestrator")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    pod_labels = the("Deployment", "orchestrator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_reconciler_runs_as_its_own_single_deployment() -> None:
    deployment = the("Deployment", "orchestrator-reconciler")
    assert deployment["spec"]["replicas"] == 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["manage.py", "k8s_reconcile"]
    service_selector = the("Service", "orchestrator")["spec"]["selector"]
    assert not service_selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_scheduler_runs_as_its_own_deployment_of_two() -> None:
    deployment = the("Deployment", "orchestrator-scheduler")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["manage.py", "runscheduler"]
    service_selector = the("Service", "orchestrator")["spec"]["selector"]
    assert not service_selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_deliverer_runs_as_its_own_deployment_with_room_to_finish() -> None:
    from django.conf import settings

    deployment = the("Deployment", "orchestrator-webhooks")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["command"][-2:] == ["manage.py", "runwebhooks"]
    # SIGTERM lets attempts in flight finish: connect, send and read, each bounded.
    assert spec["terminationGracePeriodSeconds"] > 3 * settings.WEBHOOK_TIMEOUT_SECONDS
    service_selector = the("Service", "orchestrator")["spec"]["selector"]
    assert not service_selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    "name",
    [
        "orchestrator",
        "orchestrator-reconciler",
        "orchestrator-worker",
        "orchestrator-scheduler",
        "orchestrator-webhooks",
    ],
)
def test_every_setting_the_deployments_reference_exists(name: str) -> None:
    from django.conf import settings

    config = the("ConfigMap", "orchestrator")["data"]
    for key in config:
        assert key in {"PORT", "LOG_FORMAT"} or hasattr(settings, key), key
    spec = the("Deployment", name)["spec"]["template"]["spec"]
    sources = [s for c in spec["containers"] for s in c.get("envFrom", [])]
    assert {"configMapRef": {"name": "orchestrator"}} in sources


def _container(kind: str, name: str) -> dict[str, Any]:
    [container] = the(kind, name)["spec"]["template"]["spec"]["containers"]
    return container


def test_migrations_run_once_per_rollout_in_a_job_not_in_every_api_replica() -> None:
    api = the("Deployment", "orchestrator")["spec"]["template"]["spec"]
    migrate = the("Job", "orchestrator-migrate")

    assert "initContainers" not in api
    command = _container("Job", "orchestrator-migrate")["command"]
    assert command == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert migrate["spec"]["ttlSecondsAfterFinished"] > 0


def test_a_worker_deployment_runs_redis_workers_that_run_no_command_unless_told() -> None:
    from django.conf import settings

    spec = the("Deployment", "orchestrator-worker")["spec"]["template"]["spec"]
    worker = _container("Deployment", "orchestrator-worker")
    env = {item["name"]: item.get("value") for item in worker["env"]}

    assert worker["command"] == ["python", "manage.py", "runworker"]
    assert env["WORKER_ALLOW_COMMAND"] == "false"
    before = (DEPLOY / "worker.yaml").read_text().split("- name: WORKER_ALLOW_COMMAND")[0]
    said_why = before.rstrip().splitlines()[-1]
    assert said_why.strip().startswith("#"), "the setting comes with a comment saying why"
    assert spec["terminationGracePeriodSeconds"] > settings.WORKER_SHUTDOWN_GRACE_SECONDS
    assert worker["livenessProbe"]["httpGet"]["port"] == worker["ports"][0]["name"]
    assert env["WORKER_METRICS_PORT"] == str(worker["ports"][0]["containerPort"])


def test_the_reconciler_has_probes_on_its_metrics_port() -> None:
    reconciler = _container("Deployment", "orchestrator-reconciler")
    port = reconciler["ports"][0]

    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert reconciler[probe]["httpGet"]["port"] == port["name"], probe
    env = {item["name"]: item.get("value") for item in reconciler["env"]}
    assert env["RECONCILER_METRICS_PORT"] == str(port["containerPort"])
