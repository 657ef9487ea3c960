"""`manage.py runs_requeue_stale` in Kubernetes mode: a running run whose Job
is gone fails, as the reconciler would fail it; a Job is never run twice."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from runs import services
from runs.models import Run
from tests.kube.conftest import NS

pytestmark = pytest.mark.django_db


def quiet_running_k8s_run(api) -> str:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}}).json()["runId"]
    services.set_run_status(run_id, "running")
    Run.objects.filter(pk=run_id).update(updated_at=timezone.now() - timedelta(minutes=30))
    return run_id


def test_a_running_run_whose_job_is_gone_fails_and_one_with_its_job_stays(api, cluster) -> None:
    gone = quiet_running_k8s_run(api)
    kept = quiet_running_k8s_run(api)
    cluster.delete_job_behind_our_back(NS, f"run-{gone}")
    out = StringIO()

    call_command("runs_requeue_stale", "--older-than", "10m", "--confirm-after", "0", stdout=out)

    failed = Run.objects.get(pk=gone)
    assert failed.status == "failed"
    assert failed.error["code"] == "job_deleted"
    assert Run.objects.get(pk=kept).status == "running"
    assert f"{gone}  k8s    failed" in out.getvalue()
    assert "0 running runs sent again, 1 failed" in out.getvalue()
