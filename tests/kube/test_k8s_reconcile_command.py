"""`manage.py k8s_reconcile` as operators run it: a process that follows the
cluster until SIGTERM, or one resync with --once."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from runs.models import Run
from tests.kube.conftest import NS
from tests.kube.fake_apiserver import FakeKubeAPI
from tests.servers import ROOT, free_port, process_env
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}


def command(cluster: FakeKubeAPI, *args: str, log) -> subprocess.Popen[bytes]:
    env = process_env(K8S_API_HOST=cluster.url, K8S_NAMESPACE=NS, K8S_ORPHAN_GRACE_SECONDS="0")
    return subprocess.Popen(
        [sys.executable, "manage.py", "k8s_reconcile", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_the_reconcile_command_follows_jobs_and_stops_cleanly_on_sigterm(api, cluster, tmp_path) -> None:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}}).json()["runId"]
    log_path = tmp_path / "reconcile.log"
    with log_path.open("wb") as log:
        proc = command(cluster, log=log)
        try:
            assert cluster.wait_for(lambda: cluster.open_watches == 2, timeout=20), log_path.read_text()
            cluster.set_job_status(NS, f"run-{run_id}", COMPLETE)
            wait_for(lambda: Run.objects.get(pk=run_id).status == "completed", timeout=10)

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "reconciler stopped" in log_path.read_text()
    # The API server notices a client that hung up at its next look (every 0.25 s).
    assert cluster.wait_for(lambda: cluster.open_watches == 0, timeout=5)


def test_reconcile_once_repairs_drift_and_exits(api, cluster, tmp_path) -> None:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}}).json()["runId"]
    cluster.delete_job_behind_our_back(NS, f"run-{run_id}")

    with (tmp_path / "once.log").open("wb") as log:
        assert command(cluster, "--once", log=log).wait(timeout=30) == 0

    run = Run.objects.get(pk=run_id)
    assert run.status == "failed" and run.error["code"] == "job_deleted"


def test_the_reconciler_serves_its_own_metrics_lag_included(api, cluster, tmp_path) -> None:
    run_id = api.post("/runs?mode=k8s", {"spec": {"image": "busybox"}}).json()["runId"]
    port = free_port()
    log_path = tmp_path / "reconcile.log"

    def lag() -> float | None:
        """The lag the reconciler serves, once it has recorded one."""
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.TransportError:
            return None
        for line in text.splitlines():
            if line.startswith("orchestrator_reconciler_lag_seconds "):
                return float(line.split()[1]) or None
        return None

    with log_path.open("wb") as log:
        proc = command(cluster, "--metrics-port", str(port), log=log)
        try:
            assert cluster.wait_for(lambda: cluster.open_watches == 2, timeout=20), log_path.read_text()
            cluster.set_job_status(NS, f"run-{run_id}", COMPLETE)
            wait_for(lambda: Run.objects.get(pk=run_id).status == "completed", timeout=10)

            # The Job was created moments ago (its timestamp in whole seconds):
            # the reconciler saw it within seconds, and says so once it has
            # applied the event (the lag is recorded just after).
            seen = wait_for(lag, timeout=10)
            assert 0 < seen < 30
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
