"""A delayed k8s run gets its Job when admitted, not when created."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import admission, services
from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI

pytestmark = pytest.mark.django_db

SPEC = {"image": "ghcr.io/acme/train:1.2"}


def test_the_job_is_created_only_when_the_run_is_admitted(cluster: FakeKubeAPI) -> None:
    run_at = timezone.now() + timedelta(hours=1)
    run, _ = services.create_run(mode="k8s", spec=SPEC, run_at=run_at)

    assert cluster.get_job(NS, f"run-{run.id}") is None
    assert admission.admit_due(now=run_at) == 1

    assert cluster.get_job(NS, f"run-{run.id}") is not None
    assert Run.objects.get(pk=run.pk).waiting_for is None


def test_a_due_run_keeps_waiting_while_the_cluster_is_down(cluster: FakeKubeAPI, settings) -> None:
    settings.ADMISSION_RETRY_SECONDS = 5
    run_at = timezone.now() + timedelta(hours=1)
    run, _ = services.create_run(mode="k8s", spec=SPEC, run_at=run_at)
    cluster.set_unavailable()

    assert admission.admit_due(now=run_at) == 0

    run.refresh_from_db()
    assert run.status == "pending" and run.waiting_for["reason"] == "runAt"
    assert run.not_before == run_at + timedelta(seconds=5)
    cluster.set_unavailable(False)
    assert admission.admit_due(now=run_at + timedelta(seconds=5)) == 1
    assert cluster.get_job(NS, f"run-{run.id}") is not None
