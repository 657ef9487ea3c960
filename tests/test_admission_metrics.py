"""Admission metrics: runs waiting by reason, admission latency, retries by mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import admission, services
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {}}
BOOM = {"code": "task_error", "message": "boom"}


def test_runs_waiting_are_counted_by_reason(client, queue) -> None:
    before = scrape(client)
    services.create_run(mode="redis", spec=SPEC, run_at=timezone.now() + timedelta(hours=1))
    first, _ = services.create_run(mode="redis", spec=SPEC)
    services.create_run(mode="redis", spec=SPEC, depends_on=[first.pk])
    services.create_run(mode="redis", spec=SPEC, depends_on=[first.pk])
    for _ in range(3):
        services.create_run(mode="redis", spec=SPEC, concurrency_limit={"key": "k", "limit": 1})

    text = scrape(client)

    assert value(before, "orchestrator_runs_waiting", reason="runAt") == 0
    assert value(text, "orchestrator_runs_waiting", reason="runAt") == 1
    assert value(text, "orchestrator_runs_waiting", reason="dependencies") == 2
    assert value(text, "orchestrator_runs_waiting", reason="concurrency") == 2
    assert value(text, "orchestrator_runs_waiting", reason="backoff") == 0


def test_retries_and_admission_latency_are_counted(client, queue) -> None:
    before = scrape(client)
    run, _ = services.create_run(mode="redis", spec=SPEC, retry={"maxAttempts": 2, "backoffSeconds": 1})
    services.begin_attempt(run.pk)
    retried = services.finish_attempt(run.pk, 1, "failed", error=BOOM)
    admission.admit_due(now=retried.not_before)
    first, _ = services.create_run(mode="redis", spec=SPEC)
    services.create_run(mode="redis", spec=SPEC, depends_on=[first.pk])
    services.set_run_status(first.pk, "running")
    services.set_run_status(first.pk, "completed")

    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("orchestrator_run_retries_total", mode="redis") == 1
    assert delta("orchestrator_admission_latency_seconds_count", reason="backoff") == 1
    assert delta("orchestrator_admission_latency_seconds_count", reason="dependencies") == 1
    assert delta("orchestrator_admission_latency_seconds_bucket", reason="dependencies", le="1.0") == 1
