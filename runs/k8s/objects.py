"""The Kubernetes objects of one run (its Job and token Secret): read and delete."""

from __future__ import annotations

from typing import Any

from kubernetes.client.rest import ApiException

from runs.k8s import client as k8s
from runs.k8s.manifests import job_name, secret_name


def read_job(run_id: str, attempt: int = 1) -> Any | None:
    try:
        return k8s.batch_api().read_namespaced_job(
            job_name(run_id, attempt), k8s.namespace(), _request_timeout=k8s.request_timeout()
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_run_objects(run_id: str, attempt: int = 1) -> None:
    """Delete the Job of the run's attempt (its pods and Secret go with it)
    and the Secret itself, in case the Job was deleted with orphaned
    dependents. Already gone (404) is fine."""
    ns = k8s.namespace()
    timeout = k8s.request_timeout()
    try:
        k8s.batch_api().delete_namespaced_job(
            job_name(run_id, attempt), ns, propagation_policy="Background", _request_timeout=timeout
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        k8s.core_api().delete_namespaced_secret(secret_name(run_id, attempt), ns, _request_timeout=timeout)
    except ApiException as exc:
        if exc.status != 404:
            raise
