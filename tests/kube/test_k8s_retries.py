"""Retries in k8s mode: each attempt is a Job of its own, made after the backoff."""

from __future__ import annotations

import pytest

from journal import selectors as journal
from runs import admission
from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "failed": 1}
RETRY = {"maxAttempts": 2, "backoffSeconds": 30}


def test_a_failed_job_makes_a_fresh_job_for_the_next_attempt_after_the_backoff(
    api, cluster: FakeKubeAPI, reconciler
) -> None:
    response = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}, "retry": RETRY})
    assert response.status_code == 201, response.content
    run_id = response.json()["runId"]
    first = cluster.get_job(NS, f"run-{run_id}")
    assert first["spec"]["backoffLimit"] == 0

    cluster.set_job_status(NS, f"run-{run_id}", FAILED)

    waiting = wait_for(lambda: (run := Run.objects.get(pk=run_id)).attempt == 2 and run)
    assert waiting.status == "pending" and waiting.waiting_for["reason"] == "backoff"
    assert waiting.error["code"] == "backoff_limit_exceeded"
    assert cluster.get_job(NS, f"run-{run_id}-2") is None, "not before the backoff has passed"

    assert admission.admit_due(now=waiting.not_before) == 1

    second = cluster.get_job(NS, f"run-{run_id}-2")
    assert second is not None and second["spec"]["backoffLimit"] == 0
    assert second["metadata"]["labels"]["orchestrator.io/attempt"] == "2"
    assert cluster.get_secret(NS, f"run-{run_id}-2-token") is not None
    # The first attempt's Job, reported again (a resync, a late event), changes nothing.
    cluster.set_job_status(NS, f"run-{run_id}", {**FAILED, "failed": 2})
    cluster.set_job_status(NS, f"run-{run_id}-2", COMPLETE)
    done = wait_for(lambda: (run := Run.objects.get(pk=run_id)).is_final and run)
    assert done.status == "completed" and done.attempt == 2
    types = [entry.type for entry in journal.entries_of_run(run_id)]
    assert types == ["run.created", "run.retrying", "run.running", "run.completed"]


def test_the_last_attempt_fails_the_run(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}, "retry": RETRY}).json()["runId"]
    cluster.set_job_status(NS, f"run-{run_id}", FAILED)
    waiting = wait_for(lambda: (run := Run.objects.get(pk=run_id)).attempt == 2 and run)
    admission.admit_due(now=waiting.not_before)

    cluster.set_job_status(NS, f"run-{run_id}-2", FAILED)

    done = wait_for(lambda: (run := Run.objects.get(pk=run_id)).is_final and run)
    assert done.status == "failed" and done.attempt == 2


def test_a_canceled_retry_gets_no_new_job(api, cluster: FakeKubeAPI, reconciler) -> None:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}, "retry": RETRY}).json()["runId"]
    cluster.set_job_status(NS, f"run-{run_id}", FAILED)
    waiting = wait_for(lambda: (run := Run.objects.get(pk=run_id)).attempt == 2 and run)

    assert api.delete(f"/runs/{run_id}").json()["status"] == "canceled"

    assert admission.admit_due(now=waiting.not_before) == 0
    assert cluster.get_job(NS, f"run-{run_id}-2") is None
