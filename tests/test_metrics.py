"""/metrics: the seed's request histogram, our run metrics, and correct totals
when several worker processes serve the API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_request_durations_are_labelled_by_route_never_by_raw_path(client, make_run):
    run = make_run()
    client.get(f"/runs/{run['id']}")
    client.get("/runs/no-such-run/checkpoints")
    client.get("/no/such/page")

    text = scrape(client)

    labels = {"method": "GET", "route": "/runs/{run_id}", "status_code": "200"}
    assert value(text, "http_request_duration_seconds_count", **labels) >= 1
    assert value(
        text, "http_request_duration_seconds_count", method="GET", route="unmatched", status_code="404"
    )
    assert run["id"] not in text
    assert "no-such-run" not in text and "/no/such/page" not in text
    # One latency histogram: django-prometheus's request families are gone.
    assert "django_http_" not in text


def test_runs_created_finished_and_checkpoints_appended_are_counted(
    client, api, make_run, django_capture_on_commit_callbacks
):
    before = scrape(client)
    run = make_run(mode="redis")
    make_run(mode="k8s", spec={"image": "busybox"})
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [{"type": "a"}, {"type": "b"}]})
        api.patch(f"/runs/{run['id']}", {"status": "running"})
        api.patch(f"/runs/{run['id']}", {"status": "completed"})
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("orchestrator_runs_created_total", mode="redis") == 1
    assert delta("orchestrator_runs_created_total", mode="k8s") == 1
    assert delta("orchestrator_checkpoints_appended_total") == 2
    assert delta("orchestrator_runs_finished_total", mode="redis", status="completed") == 1
    assert delta("orchestrator_run_status_changes_total", mode="redis", status="running") == 1
    assert delta("orchestrator_run_duration_seconds_count", mode="redis", status="completed") == 1


def test_every_metric_of_the_issue_is_exported(client):
    text = scrape(client)

    for name in (
        "http_request_duration_seconds",
        "orchestrator_runs_created_total",
        "orchestrator_runs_finished_total",
        "orchestrator_checkpoints_appended_total",
        "orchestrator_event_streams_open",
        "orchestrator_event_delivery_seconds",
        "orchestrator_queue_depth",
        "orchestrator_queue_pending",
        "orchestrator_queue_oldest_waiting_seconds",
        "orchestrator_workers",
        "orchestrator_run_status_changes_total",
        "orchestrator_run_duration_seconds",
        "orchestrator_reconciler_lag_seconds",
    ):
        assert f"# TYPE {name} " in text, name


@pytest.mark.django_db(transaction=True)
def test_open_event_streams_are_counted_while_open(asgi_server):
    created = httpx.post(f"{asgi_server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}})
    run_id = created.json()["runId"]

    def gauge() -> float:
        return value(httpx.get(f"{asgi_server.url}/metrics").text, "orchestrator_event_streams_open")

    before = gauge()
    with httpx.stream("GET", f"{asgi_server.url}/runs/{run_id}/events", timeout=10) as stream:
        assert stream.status_code == 200
        wait_for(lambda: gauge() == before + 1, timeout=5, what="the gauge to count the open stream")
    wait_for(lambda: gauge() == before, timeout=5, what="the gauge to drop when the stream closes")


def _created_per_worker(directory: Path) -> dict[str, float]:
    """Runs created as counted by each worker process, from its own sample file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    per_worker = {}
    for path in directory.glob("counter_*.db"):
        total = sum(
            s.value
            for metric in MultiProcessCollector.merge([str(path)], accumulate=True)
            if metric.name == "orchestrator_runs_created"
            for s in metric.samples
            if s.name == "orchestrator_runs_created_total"
        )
        per_worker[path.stem] = total
    return per_worker


@pytest.mark.django_db(transaction=True)
def test_two_gunicorn_workers_report_the_total_of_both(tmp_path):
    from tests.servers import running_server

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale samples of an earlier run")
    created = 0
    with running_server(tmp_path, gunicorn_workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as server:
        assert not (metrics_dir / "counter_999999.db").exists()
        with httpx.Client(base_url=server.url) as http, ThreadPoolExecutor(8) as pool:

            def create(_: int) -> int:
                # A connection per request, so the workers share them out.
                return httpx.post(f"{server.url}/runs?mode=redis", json={}).status_code

            # Until both workers have created some (the kernel decides who accepts).
            while created < 400:
                assert set(pool.map(create, range(16))) == {201}
                created += 16
                if sum(1 for n in _created_per_worker(metrics_dir).values() if n > 0) >= 2:
                    break
            per_worker = _created_per_worker(metrics_dir)
            scrapes = [value(http.get("/metrics").text, "orchestrator_runs_created_total", mode="redis")]
            scrapes += [
                value(
                    httpx.get(f"{server.url}/metrics").text, "orchestrator_runs_created_total", mode="redis"
                )
                for _ in range(6)
            ]

    assert sum(1 for n in per_worker.values() if n > 0) >= 2, per_worker
    assert sum(per_worker.values()) == created
    assert scrapes == [created] * len(scrapes)


def test_made_up_methods_open_no_new_series(client):
    for n in range(3):
        client.generic(f"BREW{n}", "/runs")

    text = scrape(client)

    assert "BREW" not in text
    other = {"method": "OTHER", "route": "/runs", "status_code": "405"}
    assert value(text, "http_request_duration_seconds_count", **other) == 3
