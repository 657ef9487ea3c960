"""The Kubernetes API client and the cluster-side options, both from settings.

Settings are read at call time (and the client cached per configuration), so
tests and management commands can point at another cluster without a restart.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from runs.k8s.manifests import JobOptions

# Errors that mean "the cluster cannot be reached or will not serve us now",
# as opposed to "the request itself is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    OSError,
    ConfigException,
)


def api_client() -> kubernetes.client.ApiClient:
    return _api_client(
        settings.K8S_CONFIG_MODE, settings.K8S_KUBECONFIG, settings.K8S_CONTEXT, settings.K8S_API_HOST
    )


def batch_api() -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api_client())


def core_api() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client())


def request_timeout() -> float:
    """Bounds every non-watch call: dispatch holds the run's transaction open while it waits."""
    return settings.K8S_REQUEST_TIMEOUT_SECONDS


def namespace() -> str:
    return settings.K8S_NAMESPACE


@lru_cache(maxsize=8)
def _api_client(mode: str, kubeconfig: str, context: str, host: str) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    if mode == "auto":
        mode = "in-cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") else "kubeconfig"
    if host:
        configuration.host = host
    elif mode == "in-cluster":
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    elif mode == "kubeconfig":
        kubernetes.config.load_kube_config(
            config_file=kubeconfig or None,
            context=context or None,
            client_configuration=configuration,
            persist_config=False,
        )
    else:
        raise ImproperlyConfigured(f"K8S_CONFIG_MODE must be auto, in-cluster or kubeconfig, not {mode!r}")
    # We read objects as plain JSON; a field a newer server leaves out must not
    # make the client's models refuse the whole object.
    configuration.client_side_validation = False
    return kubernetes.client.ApiClient(configuration)


def job_options() -> JobOptions:
    ttl = settings.K8S_TTL_SECONDS_AFTER_FINISHED
    return JobOptions(
        namespace=settings.K8S_NAMESPACE,
        instance=settings.K8S_INSTANCE,
        orchestrator_url=settings.K8S_ORCHESTRATOR_URL,
        service_account=settings.K8S_SERVICE_ACCOUNT,
        image_pull_secrets=tuple(settings.K8S_IMAGE_PULL_SECRETS),
        ttl_seconds_after_finished=None if ttl is None or ttl < 0 else ttl,
        pod_template_overlay=pod_template_overlay(
            settings.K8S_POD_TEMPLATE_OVERLAY, settings.K8S_POD_TEMPLATE_OVERLAY_FILE
        ),
        priority_classes=dict(settings.K8S_PRIORITY_CLASSES),
    )


@lru_cache(maxsize=8)
def _load_overlay(inline: str, path: str) -> str:
    overlay: dict[str, Any] = {}
    if path:
        # YAML is a superset of JSON, so one loader reads either kind of file.
        loaded = yaml.safe_load(Path(path).read_text())
        if not isinstance(loaded, dict):
            raise ImproperlyConfigured("K8S_POD_TEMPLATE_OVERLAY_FILE must hold an object")
        overlay.update(loaded)
    if inline:
        try:
            loaded = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"K8S_POD_TEMPLATE_OVERLAY is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ImproperlyConfigured("K8S_POD_TEMPLATE_OVERLAY must be a JSON object")
        overlay.update(loaded)
    return json.dumps(overlay)


def pod_template_overlay(inline: str, path: str) -> dict[str, Any]:
    """The operator's additions to every run's pod template (the file first, then the env JSON)."""
    return json.loads(_load_overlay(inline, path))  # a fresh copy: callers may mutate it


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the cluster is unreachable or refuses service (not a bad request)."""
    if isinstance(exc, ApiException):
        return exc.status in (0, 401, 403, 429) or exc.status >= 500
    return isinstance(exc, CONNECTION_ERRORS)


def describe_error(exc: BaseException) -> str:
    """A short, secret-free reason for logs and error details."""
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        return f"HTTP {exc.status}: {message}"
    return type(exc).__name__


def describe_outage(exc: BaseException) -> str:
    """What an unavailable cluster means for a client, in words."""
    if isinstance(exc, ConfigException):
        return "Kubernetes is not configured: no in-cluster service account and no kubeconfig"
    if isinstance(exc, ApiException):
        if exc.status in (401, 403):
            return f"Kubernetes API refused the orchestrator's credentials (HTTP {exc.status})"
        if exc.status == 429:
            return "Kubernetes API is throttling requests (HTTP 429)"
        if exc.status:
            return f"Kubernetes API failed (HTTP {exc.status})"
    return "Kubernetes API not reachable"
