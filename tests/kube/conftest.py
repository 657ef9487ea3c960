"""Fixtures for Kubernetes mode: a fresh fake cluster per test, the reconciler in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kube.fake_apiserver import FakeKubeAPI

NS = "runs"


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `check` (which reads the database, so no event can be awaited) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(0.02)


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
