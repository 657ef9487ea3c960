"""Metrics counted by whoever records the change (a worker serves its own),
the queue and fleet gauges read at scrape time, and the Grafana dashboard
asking only for series we export."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from runs import services
from runs.models import Run
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
from tests.servers import ROOT, free_port
from tests.test_metrics import scrape, value
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prefix(settings):
    value_ = settings.REDIS_KEY_PREFIX = unique_prefix()
    yield value_
    drop_keys(value_)


def test_a_worker_counts_every_checkpoint_and_status_change_of_its_runs(prefix, tmp_path):
    port = free_port()
    worker = WorkerProcess(tmp_path, prefix).start("--metrics-port", str(port))
    try:
        spec = {"task": "sleep", "input": {"seconds": 0.2, "checkpoints": 40}}
        runs = [services.create_run(mode="redis", spec=spec)[0] for _ in range(2)]
        wait_for(lambda: all(Run.objects.get(pk=run.pk).status == "completed" for run in runs), timeout=30)
        text = wait_for(
            lambda: (
                (body := httpx.get(f"http://127.0.0.1:{port}/metrics").text)
                and value(body, "orchestrator_runs_finished_total", mode="redis", status="completed") == 2
                and body
            )
        )
    finally:
        worker.terminate()
        worker.stop()

    assert value(text, "orchestrator_checkpoints_appended_total") == 80
    assert value(text, "orchestrator_run_status_changes_total", mode="redis", status="running") == 2
    assert value(text, "orchestrator_run_status_changes_total", mode="redis", status="completed") == 2
    assert value(text, "orchestrator_run_duration_seconds_count", mode="redis", status="completed") == 2
    assert value(text, "orchestrator_run_duration_seconds_sum", mode="redis", status="completed") >= 0.4


def test_the_api_reads_queue_depth_pending_and_oldest_age_from_redis_at_scrape_time(prefix, client):
    from runs.redis.queue import run_queue

    before = scrape(client)
    assert value(before, "orchestrator_queue_up") == 1
    assert value(before, "orchestrator_queue_depth") == 0
    assert value(before, "orchestrator_queue_oldest_waiting_seconds") == 0
    runs = [services.create_run(mode="redis", spec={"task": "sleep"})[0] for _ in range(3)]
    queue = run_queue()
    queue.ensure_group()
    # One of them taken by a (pretend) worker: delivered, not finished.
    queue.redis.xreadgroup(queue.keys.group, "pretend-worker", {queue.keys.stream: ">"}, count=1)

    def waited(body: str) -> bool:
        return value(body, "orchestrator_queue_oldest_waiting_seconds") > 0

    text = wait_for(lambda: (body := scrape(client)) and waited(body) and body)

    assert len(runs) == 3
    assert value(text, "orchestrator_queue_depth") == 2
    assert value(text, "orchestrator_queue_pending") == 1
    assert value(text, "orchestrator_queue_oldest_waiting_seconds") < 60
    assert value(text, "orchestrator_workers", state="alive") == 0


def test_an_unreachable_redis_leaves_the_queue_gauges_out_and_says_so(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    text = scrape(client)

    assert value(text, "orchestrator_queue_up") == 0
    assert "orchestrator_queue_depth" not in text
    assert "orchestrator_runs_created_total" in text  # the rest is served as ever


def test_the_grafana_dashboard_asks_only_for_series_we_export(client):
    dashboard = json.loads((ROOT / "deploy/grafana/orchestrator-dashboard.json").read_text())
    exported = set(re.findall(r"^# TYPE (\S+) (\S+)", scrape(client), flags=re.M))
    names = {name for name, _ in exported}
    # Counters and histograms appear with their sample suffixes in queries.
    sample_names = names | {f"{n}_{suffix}" for n, kind in exported for suffix in ("bucket", "count", "sum")
                            if kind == "histogram"}  # fmt: skip
    sample_names |= {n if n.endswith("_total") else f"{n}_total" for n, kind in exported if kind == "counter"}

    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:orchestrator|http)_[a-z_]+)\b", target["expr"])
    }

    assert queried, "the dashboard queries nothing"
    assert queried <= sample_names, queried - sample_names
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
