"""Fixtures for Kubernetes mode: a fresh fake cluster per test, the reconciler in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kube.fake_apiserver import FakeKubeAPI

NS = "runs"


@pytest.fixture
def cluster(settings: Any) -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as kube:
        settings.K8S_API_HOST = kube.url
        settings.K8S_NAMESPACE = NS
        settings.K8S_ORCHESTRATOR_URL = "http://orchestrator.test:7070"
        yield kube


@pytest.fixture
def reconciler(cluster: FakeKubeAPI, transactional_db: None) -> Iterator[Any]:
    """The reconciler running in a thread, both watches open; stopped (and checked stopped) after."""
    from runs.k8s.reconciler import Reconciler

    rec = Reconciler(
        resync_seconds=3600, orphan_grace_seconds=3600, watch_timeout_seconds=60, backoff_seconds=0.05
    )
    thread = threading.Thread(target=rec.run, name="reconciler", daemon=True)
    thread.start()
    assert cluster.wait_for(lambda: cluster.open_watches == 2), "the reconciler never opened its watches"
    yield rec
    rec.stop()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the reconciler did not stop"
