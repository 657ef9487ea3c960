"""Kubernetes backend: each run is a batch/v1 Job, created inside the run's
create transaction, so a run exists only if its Job does."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from kubernetes.client.rest import ApiException

from orchestrator import tracing
from runs import states, tokens
from runs.backends.base import Backend
from runs.exceptions import BackendUnavailable, SchemaViolation
from runs.k8s import client as k8s
from runs.k8s.manifests import build_job, build_token_secret, job_name, secret_name
from runs.k8s.objects import delete_run_objects, read_job
from runs.k8s.status import job_deleted_error
from runs.models import Run

logger = logging.getLogger("runs.k8s")


class KubernetesBackend(Backend):
    name = "k8s"

    def dispatch(self, run: Run) -> None:
        try:
            with tracing.span("run.dispatch", **{"run.id": str(run.id), "run.mode": self.mode}):
                self._create(run)
        except ApiException as exc:
            if exc.status in (400, 422):
                # The cluster rejects what the spec asks for (e.g. a malformed quantity).
                raise SchemaViolation({"spec": [k8s.describe_error(exc)]}) from None
            raise self._unavailable(run, exc) from None
        except k8s.CONNECTION_ERRORS as exc:
            raise self._unavailable(run, exc) from None

    def cancel(self, run: Run) -> None:
        delete_run_objects(str(run.id), run.attempt)

    def ensure_dispatched(self, run: Run) -> bool:
        # Only a pending run may get its Job again: a running one lost its Job
        # mid-way, and the reconciler fails it rather than running it twice.
        if run.status != states.PENDING:
            return False
        try:
            if read_job(str(run.id), run.attempt) is not None:
                return False
            self._create(run)
        except (ApiException, *k8s.CONNECTION_ERRORS) as exc:
            logger.warning(
                "could not re-dispatch run to Kubernetes: %s",
                k8s.describe_error(exc),
                extra={"runId": str(run.id)},
            )
            return False
        return True

    def lost_running(self, runs: list[Run]) -> list[Run]:
        """Runs whose Job is gone. A cluster that cannot be asked loses nothing."""
        lost = []
        for run in runs:
            try:
                if read_job(str(run.id), run.attempt) is None:
                    lost.append(run)
            except (ApiException, *k8s.CONNECTION_ERRORS) as exc:
                logger.warning(
                    "could not look for the Job: %s", k8s.describe_error(exc), extra={"runId": str(run.id)}
                )
        return lost

    def release_lost(self, run: Run) -> dict[str, Any] | None:
        """A Job is not run twice: the attempt fails, as the reconciler would
        fail it (and the run is retried if it has attempts left)."""
        try:
            delete_run_objects(str(run.id), run.attempt)  # a token Secret the Job's delete may have left
        except (ApiException, *k8s.CONNECTION_ERRORS) as exc:
            logger.warning(
                "could not remove the run's Secret: %s", k8s.describe_error(exc), extra={"runId": str(run.id)}
            )
        return job_deleted_error(job_name(run.id, run.attempt))

    def describe(self, run: Run) -> dict[str, Any] | None:
        return build_job(run.id, run.spec or {}, k8s.job_options(), run.attempt, run.priority)

    def plan_steps(self, run: Run) -> list[str]:
        ns = k8s.namespace()
        return [
            f"create Job {job_name(run.id, run.attempt)} in namespace {ns} (the manifest under dispatch)",
            f"create Secret {secret_name(run.id, run.attempt)} holding the run's worker token,"
            " owned by the Job",
            "follow the Job and its pods with the reconciler (manage.py k8s_reconcile)",
            _priority_step(run.priority),
        ]

    def _create(self, run: Run) -> None:
        """Create the Job, then the token Secret it owns. Both creates treat
        409 AlreadyExists as done, so repeating a dispatch is harmless."""
        options = k8s.job_options()
        run_id = str(run.id)
        attempt = run.attempt
        batch = k8s.batch_api()
        try:
            job = batch.create_namespaced_job(
                options.namespace,
                build_job(run_id, run.spec or {}, options, attempt, run.priority),
                _request_timeout=k8s.request_timeout(),
            )
            uid = job.metadata.uid
        except ApiException as exc:
            if exc.status != 409:
                raise
            uid = batch.read_namespaced_job(
                job_name(run_id, attempt), options.namespace, _request_timeout=k8s.request_timeout()
            ).metadata.uid
        token, _ = tokens.mint(tokens.WORKER, run_id, ttl_seconds=_token_ttl(run.spec or {}))
        try:
            k8s.core_api().create_namespaced_secret(
                options.namespace,
                build_token_secret(run_id, token, uid, options, attempt),
                _request_timeout=k8s.request_timeout(),
            )
        except ApiException as exc:
            if exc.status == 409:
                return
            _undo_job(run_id, attempt)
            raise
        except k8s.CONNECTION_ERRORS:
            _undo_job(run_id, attempt)
            raise

    def _unavailable(self, run: Run, exc: BaseException) -> BackendUnavailable:
        reason = k8s.describe_error(exc)
        logger.warning("Kubernetes unavailable for dispatch: %s", reason, extra={"runId": str(run.id)})
        return BackendUnavailable(self.name, k8s.describe_outage(exc), reason)


def _token_ttl(spec: dict[str, Any]) -> int:
    """Long enough for the run's own deadline, so a slow run keeps its say."""
    ttl = settings.WORKER_TOKEN_TTL_SECONDS
    timeout = spec.get("timeoutSeconds")
    return max(ttl, math.ceil(timeout) + 3600) if timeout else ttl


def _undo_job(run_id: str, attempt: int) -> None:
    # The run is about to be rolled back; a Job left here would be an orphan
    # (the reconciler removes those too, after a grace period).
    try:
        delete_run_objects(run_id, attempt)
    except Exception:
        logger.warning("could not remove the Job of a failed dispatch", extra={"runId": run_id})


def _priority_step(level: int) -> str:
    priority_class = settings.K8S_PRIORITY_CLASSES.get(level)
    if priority_class:
        mapped = f"priorityClassName {priority_class!r} (K8S_PRIORITY_CLASSES)"
        return f"priority {level}: the Job's pod gets {mapped}"
    return (
        f"priority {level}: no PriorityClass is mapped to it (K8S_PRIORITY_CLASSES), so the cluster "
        "schedules the pod as any other; priority orders nothing in k8s mode"
    )
