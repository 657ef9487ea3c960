"""The server's workers collect garbage with the tuned thresholds and with
everything loaded at start-up frozen out of the collector's walks."""

from __future__ import annotations

import sys

import httpx
import pytest

from tests.servers import ROOT, ServerProcess, free_port, process_env

pytestmark = pytest.mark.django_db(transaction=True)


def probe(tmp_path, **env: str) -> dict:
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "tests.gc_probe_app:app",
        "-c", str(ROOT / "orchestrator" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "1",
    ]  # fmt: skip
    server = ServerProcess(argv, port, process_env(**env), tmp_path / f"gc-{port}.log").start()
    try:
        return httpx.get(f"{server.url}/", timeout=5).json()
    finally:
        server.stop()


def test_workers_raise_the_full_collection_threshold_and_freeze_start_up_objects(tmp_path):
    seen = probe(tmp_path)

    assert seen["threshold"] == [700, 10, 1000]
    # The app, gunicorn and uvicorn, imported before the first request: many thousands of objects.
    assert seen["frozen"] > 10_000


def test_gc_thresholds_can_be_set(tmp_path):
    assert probe(tmp_path, GC_THRESHOLDS="700,10,10")["threshold"] == [700, 10, 10]
