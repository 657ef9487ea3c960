"""The Job (and token Secret) for one run, as plain Kubernetes manifests.

Pure functions of the run and the options: no settings, no API calls, so plan
mode can show exactly what dispatch sends and tests can compare the two.
"""

from __future__ import annotations

import copy
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from orchestrator import tracing

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "orchestrator"
INSTANCE_LABEL = "app.kubernetes.io/instance"
RUN_ID_LABEL = "orchestrator.io/run-id"
RUN_ID_ANNOTATION = "orchestrator.io/run-id"
ATTEMPT_LABEL = "orchestrator.io/attempt"
CONTAINER_NAME = "run"
TOKEN_KEY = "token"  # noqa: S105 - the key inside the Secret, not a secret
RESERVED_ENV = ("ORCHESTRATOR_URL", "ORCHESTRATOR_RUN_ID", "ORCHESTRATOR_TOKEN", "TRACEPARENT", "TRACESTATE")


@dataclass(frozen=True)
class JobOptions:
    """Cluster-side choices that do not come from the run's spec."""

    namespace: str = "default"
    # Tells this installation's Jobs from another's in a shared namespace.
    instance: str = "orchestrator"
    orchestrator_url: str = "http://orchestrator:7070"
    service_account: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    ttl_seconds_after_finished: int | None = 3600
    pod_template_overlay: dict[str, Any] = field(default_factory=dict)
    # A run's priority to its pod's PriorityClass (K8S_PRIORITY_CLASSES).
    priority_classes: dict[int, str] = field(default_factory=dict)


def job_name(run_id: object, attempt: int = 1) -> str:
    """One name per attempt, so a repeated dispatch meets 409 instead of
    making a second Job, and a retry (runs.retries) makes a fresh one. The
    first attempt keeps the plain name Jobs had before retries existed."""
    return f"run-{run_id}" if attempt <= 1 else f"run-{run_id}-{attempt}"


def secret_name(run_id: object, attempt: int = 1) -> str:
    return f"{job_name(run_id, attempt)}-token"


def attempt_of(obj: dict[str, Any]) -> int:
    """The attempt a Job or Pod was made for (1 for objects made before the label existed)."""
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL)
    try:
        return max(1, int(value)) if isinstance(value, str) else 1
    except ValueError:
        return 1


def run_id_of(obj: dict[str, Any]) -> str | None:
    """The run a Job or Pod belongs to, from the label every object we create
    carries; None when the label is missing or is not a run id."""
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(RUN_ID_LABEL)
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def labels_for(run_id: object, instance: str, attempt: int = 1) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY, INSTANCE_LABEL: instance, RUN_ID_LABEL: str(run_id)}
    if attempt > 1:
        labels[ATTEMPT_LABEL] = str(attempt)
    return labels


def selector(instance: str) -> str:
    """Selects every object this installation creates in the namespace, and nothing else."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={instance},{RUN_ID_LABEL}"


def build_job(
    run_id: object, spec: dict[str, Any], options: JobOptions, attempt: int = 1, priority: int = 5
) -> dict[str, Any]:
    """The batch/v1 Job that runs attempt `attempt` of `spec`. The pod finds
    its worker token in the attempt's Secret (see `build_token_secret`),
    never in the Job itself. A run's `priority` names the pod's
    PriorityClass when the options map it to one."""
    name = job_name(run_id, attempt)
    labels = labels_for(run_id, options.instance, attempt)
    annotations = {RUN_ID_ANNOTATION: str(run_id)}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec["image"],
        "env": _env(run_id, spec.get("env") or {}, options, attempt),
    }
    if spec.get("command"):
        container["command"] = list(spec["command"])
    if spec.get("resources"):
        container["resources"] = copy.deepcopy(spec["resources"])
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The run's code talks to the orchestrator, not to the Kubernetes API.
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if options.service_account:
        pod_spec["serviceAccountName"] = options.service_account
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in options.image_pull_secrets]
    template = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod_spec}
    if options.pod_template_overlay:
        template = merge_overlay(template, options.pod_template_overlay)
        # The overlay may add labels, never take away the ones the reconciler selects on.
        template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    priority_class = options.priority_classes.get(priority)
    if priority_class:  # the run's own choice, over the overlay's
        template["spec"]["priorityClassName"] = priority_class
    job_spec: dict[str, Any] = {
        # Never Kubernetes' own retries: each attempt is a Job of its own,
        # made after the run's backoff (runs.retries), with its own events.
        "backoffLimit": 0,
        "template": template,
    }
    if spec.get("timeoutSeconds"):
        job_spec["activeDeadlineSeconds"] = math.ceil(spec["timeoutSeconds"])
    if options.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": job_spec,
    }


def build_token_secret(
    run_id: object, token: str, job_uid: str, options: JobOptions, attempt: int = 1
) -> dict[str, Any]:
    """The Secret holding the run's worker token, owned by its Job so the
    garbage collector removes it with the Job (no blockOwnerDeletion: that
    would need the extra `jobs/finalizers` permission)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(run_id, attempt),
            "namespace": options.namespace,
            "labels": labels_for(run_id, options.instance, attempt),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job_name(run_id, attempt), "uid": job_uid}
            ],
        },
        "stringData": {TOKEN_KEY: token},
    }


def _env(run_id: object, user_env: dict[str, str], options: JobOptions, attempt: int) -> list[dict[str, Any]]:
    env = [{"name": k, "value": v} for k, v in sorted(user_env.items()) if k not in RESERVED_ENV]
    return [
        *env,
        {"name": "ORCHESTRATOR_URL", "value": options.orchestrator_url},
        {"name": "ORCHESTRATOR_RUN_ID", "value": str(run_id)},
        {
            "name": "ORCHESTRATOR_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret_name(run_id, attempt), "key": TOKEN_KEY}},
        },
        # The dispatch's W3C trace context, for the Job's own code to continue (none when tracing is off).
        *({"name": name.upper(), "value": value} for name, value in tracing.carrier().items()),
    ]


def merge_overlay(base: Any, overlay: Any) -> Any:
    """Deep-merge `overlay` into `base`: objects merge key by key, lists of
    named items (containers, env, volumes) merge by `name` like a strategic
    merge patch, any other value in the overlay replaces the base's."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = copy.deepcopy(base)
        for key, value in overlay.items():
            merged[key] = merge_overlay(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(overlay, list) and _named(base) and _named(overlay):
        merged_list = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(merged_list)}
        for item in overlay:
            if item["name"] in index:
                merged_list[index[item["name"]]] = merge_overlay(merged_list[index[item["name"]]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(overlay)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)
