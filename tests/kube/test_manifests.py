"""The Job manifest is a pure function of the run's spec and the cluster options."""

from __future__ import annotations

from runs.k8s.manifests import (
    RUN_ID_LABEL,
    JobOptions,
    build_job,
    build_token_secret,
    job_name,
    merge_overlay,
)

RUN_ID = "2b1f0c4e-9a57-4d3b-8c2e-5f6a7b8c9d0e"


def container_of(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_spec_becomes_image_command_env_and_resources() -> None:
    spec = {
        "image": "ghcr.io/acme/train:1.2",
        "command": ["python", "-m", "train", "--epochs", "3"],
        "env": {"LR": "0.1", "BATCH": "32"},
        "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
    }
    container = container_of(build_job(RUN_ID, spec, JobOptions(namespace="ml")))

    assert container["image"] == "ghcr.io/acme/train:1.2"
    assert container["command"] == ["python", "-m", "train", "--epochs", "3"]
    assert container["resources"] == spec["resources"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LR"]["value"] == "0.1" and env["BATCH"]["value"] == "32"


def test_the_pod_learns_where_to_report_and_reads_its_token_from_a_secret() -> None:
    job = build_job(RUN_ID, {"image": "busybox"}, JobOptions(orchestrator_url="http://orch:7070"))
    env = {e["name"]: e for e in container_of(job)["env"]}

    assert env["ORCHESTRATOR_URL"]["value"] == "http://orch:7070"
    assert env["ORCHESTRATOR_RUN_ID"]["value"] == RUN_ID
    assert env["ORCHESTRATOR_TOKEN"] == {
        "name": "ORCHESTRATOR_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": f"run-{RUN_ID}-token", "key": "token"}},
    }


def test_a_spec_cannot_override_the_orchestrator_variables() -> None:
    spec = {"image": "busybox", "env": {"ORCHESTRATOR_RUN_ID": "someone-else", "ORCHESTRATOR_TOKEN": "x"}}
    env = container_of(build_job(RUN_ID, spec, JobOptions()))["env"]

    assert [e for e in env if e["name"] == "ORCHESTRATOR_RUN_ID"] == [
        {"name": "ORCHESTRATOR_RUN_ID", "value": RUN_ID}
    ]
    assert all("value" not in e for e in env if e["name"] == "ORCHESTRATOR_TOKEN")


def test_timeout_and_ttl_become_job_limits_and_attempts_never_pod_retries() -> None:
    job = build_job(
        RUN_ID,
        {"image": "busybox", "maxAttempts": 3, "timeoutSeconds": 90.5},
        JobOptions(ttl_seconds_after_finished=600),
    )
    assert job["spec"]["backoffLimit"] == 0, "maxAttempts makes a Job per attempt, never pod retries"
    assert job["spec"]["activeDeadlineSeconds"] == 91
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_one_attempt_and_no_timeout_by_default() -> None:
    job = build_job(RUN_ID, {"image": "busybox"}, JobOptions(ttl_seconds_after_finished=None))
    assert job["spec"]["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_the_job_is_named_and_labelled_after_its_run() -> None:
    job = build_job(RUN_ID, {"image": "busybox"}, JobOptions(namespace="ml"))
    assert job["metadata"]["name"] == job_name(RUN_ID) == f"run-{RUN_ID}"
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"][RUN_ID_LABEL] == RUN_ID
    assert job["metadata"]["annotations"]["orchestrator.io/run-id"] == RUN_ID
    assert job["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL] == RUN_ID


def test_service_account_and_pull_secrets_come_from_the_options() -> None:
    options = JobOptions(service_account="runner", image_pull_secrets=("regcred", "other"))
    pod = build_job(RUN_ID, {"image": "busybox"}, options)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert pod["automountServiceAccountToken"] is False


def test_the_overlay_adds_to_the_pod_template_without_losing_our_labels() -> None:
    overlay = {
        "metadata": {"labels": {"team": "ml", RUN_ID_LABEL: "spoofed"}},
        "spec": {
            "nodeSelector": {"gpu": "true"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "containers": [{"name": "run", "securityContext": {"runAsNonRoot": True}}],
        },
    }
    template = build_job(RUN_ID, {"image": "busybox"}, JobOptions(pod_template_overlay=overlay))["spec"][
        "template"
    ]
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["labels"][RUN_ID_LABEL] == RUN_ID
    assert template["spec"]["nodeSelector"] == {"gpu": "true"}
    container = template["spec"]["containers"][0]
    assert container["image"] == "busybox" and container["securityContext"] == {"runAsNonRoot": True}


def test_overlay_lists_of_named_items_merge_by_name_and_others_replace() -> None:
    base = {"env": [{"name": "A", "value": "1"}], "args": ["x"]}
    merged = merge_overlay(
        base, {"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}], "args": ["y"]}
    )
    assert merged == {"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}], "args": ["y"]}
    assert base == {"env": [{"name": "A", "value": "1"}], "args": ["x"]}


def test_the_token_secret_is_owned_by_the_job() -> None:
    secret = build_token_secret(RUN_ID, "tok", "uid-1", JobOptions(namespace="ml"))
    assert secret["metadata"]["name"] == f"run-{RUN_ID}-token"
    assert secret["metadata"]["namespace"] == "ml"
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": f"run-{RUN_ID}", "uid": "uid-1"}
    ]
    assert secret["stringData"] == {"token": "tok"}


def test_the_installation_is_in_the_labels_and_the_selector() -> None:
    from runs.k8s.manifests import selector

    job = build_job(RUN_ID, {"image": "busybox"}, JobOptions(instance="staging"))
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "staging"
    assert "app.kubernetes.io/instance=staging" in selector("staging").split(",")


def test_only_a_well_formed_run_id_label_names_a_run() -> None:
    from runs.k8s.manifests import run_id_of

    assert run_id_of({"metadata": {"labels": {RUN_ID_LABEL: RUN_ID}}}) == RUN_ID
    assert run_id_of({"metadata": {"labels": {RUN_ID_LABEL: "not-a-uuid"}}}) is None
    assert run_id_of({"metadata": {}}) is None
