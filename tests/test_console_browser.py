"""The operator console in a real Chromium at 1280 px, against a real server
and a real worker: the dashboard, a run's page following the run to its end
without a reload, and the run list picking up new runs and status changes.

Screenshots of each are kept under test-artifacts/screenshots/ (or
$TEST_ARTIFACTS_DIR) for a person to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from runs import services
from runs.models import Run
from tests.browser import CHROMIUM, chromium
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
from tests.servers import ROOT, running_server
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]

WIDTH = 1280
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts") / "screenshots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium")) as started:
        started.set_viewport(WIDTH, 900)
        yield started


@pytest.fixture(scope="module")
def prefix():
    value = unique_prefix()
    yield value
    drop_keys(value)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory, prefix):
    with running_server(tmp_path_factory.mktemp("console"), REDIS_KEY_PREFIX=prefix) as started:
        yield started


@pytest.fixture
def worker(prefix, tmp_path, settings):
    settings.REDIS_KEY_PREFIX = prefix  # the runs this test creates go to the worker's queue
    started = WorkerProcess(tmp_path, prefix, concurrency=2).start()
    yield started
    started.terminate()
    started.stop()


@pytest.fixture
def signed_in(browser, server, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-unused-123")
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.set_cookie(server.url, settings.SESSION_COOKIE_NAME, session)
    return browser


def sleeper(seconds: float, checkpoints: int, **metadata: object) -> Run:
    spec = {"task": "sleep", "input": {"seconds": seconds, "checkpoints": checkpoints}}
    return services.create_run(mode="redis", spec=spec, metadata=metadata)[0]


def fits_the_width(browser) -> bool:
    return browser.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_the_dashboard_shows_the_live_worker_and_updates_itself(signed_in, server, worker):
    browser = signed_in
    done = sleeper(0.1, 1)
    wait_for(lambda: Run.objects.get(pk=done.pk).status == "completed")

    browser.open(f"{server.url}/admin/runs/dashboard/")
    row = f"document.querySelector('[data-worker*=\"-{worker.pid}-\"]')"
    browser.wait_for(f"{row} && {row}.dataset.workerState === 'alive'", what="the worker listed alive")
    updates = browser.wait_for("document.getElementById('dashboard').dataset.updates", what="a refresh")
    running = sleeper(30, 3, labels={"team": "ml"})
    browser.wait_for(
        "document.querySelector('[data-status-count=\"running\"]').textContent.trim() === '1'",
        what="the dashboard to count the new running run without a reload",
    )

    assert int(updates) >= 1
    assert browser.evaluate("document.querySelector('[data-day=\"finished\"]').textContent.trim()") == "1"
    assert browser.evaluate("document.querySelectorAll('svg.dash-chart rect.dash-bar').length") >= 1
    assert fits_the_width(browser)
    browser.screenshot(ARTIFACTS / "dashboard.png")
    services.cancel_run(running.id)


def test_a_run_page_follows_the_run_to_its_end_without_a_reload(signed_in, server, worker):
    browser = signed_in
    run = sleeper(8, 8)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == "running")

    browser.open(f"{server.url}/admin/runs/run/{run.pk}/change/")
    browser.wait_for("!!document.querySelector('[data-run-tool=\"cancel\"]')", what="the cancel button")
    browser.wait_for("!!document.querySelector('[data-live-progress] .run-progress')", what="a progress bar")
    browser.screenshot(ARTIFACTS / "run-page-running.png")
    heading = "document.querySelector('#content > h2').textContent"
    browser.wait_for(f"{heading}.includes('completed')", timeout=30, what="the heading to say completed")

    def text(selector: str) -> str:
        return browser.evaluate(f"document.querySelector({selector!r}).textContent.trim()")

    browser.wait_for(
        "document.querySelector('.field-status .readonly').textContent.trim() === 'Completed'",
        what="the status field to say completed",
    )
    assert text("[data-live-status]") == "completed"
    assert text(".field-finished_at .readonly") != "-"
    assert text("[data-live-progress] .run-progress-text") == "100%"
    assert browser.evaluate("document.querySelector('[data-run-tool=\"cancel\"]')") is None
    assert fits_the_width(browser)
    browser.screenshot(ARTIFACTS / "run-page-finished.png")


def test_the_run_list_shows_new_runs_and_status_changes_without_a_reload(signed_in, server, worker):
    browser = signed_in
    first = sleeper(0.1, 1)
    wait_for(lambda: Run.objects.get(pk=first.pk).status == "completed")
    browser.open(f"{server.url}/admin/runs/run/")
    browser.wait_for(f"!!document.querySelector('span.run-id[title=\"{first.pk}\"]')", what="the first run")
    marker = "document.getElementById('result_list').dataset.mark"
    browser.evaluate("document.getElementById('result_list').dataset.mark = 'original'")
    # It follows the run journal (GET /runs/events), with no polling while the stream is open.
    browser.wait_for(
        "document.getElementById('changelist-form').dataset.liveState === 'streaming'",
        what="the list following the run journal",
    )

    second = sleeper(4, 8, labels={"team": "ml"})
    row = f"document.querySelector('span.run-id[title=\"{second.pk}\"]').closest('tr')"
    found = f"document.querySelector('span.run-id[title=\"{second.pk}\"]')"
    browser.wait_for(f"!!{found}", what="the new run in the list")
    browser.wait_for(f"!!{row}.querySelector('.run-status-running')", what="the new run shown running")
    browser.wait_for(f"!!{row}.querySelector('.run-progress')", what="its progress bar")
    browser.screenshot(ARTIFACTS / "run-list.png")
    browser.wait_for(f"!!{row}.querySelector('.run-status-completed')", timeout=30, what="it shown completed")

    assert browser.evaluate(marker) is None  # the table was swapped, the page never reloaded
    assert browser.evaluate("document.getElementById('changelist-form').dataset.liveState") == "streaming"
    assert browser.evaluate("window.performance.getEntriesByType('navigation').length") == 1
    assert fits_the_width(browser)
    # Every column visible: the table needs no scrolling of its own.
    results = "document.querySelector('#changelist .results')"
    assert browser.evaluate(f"{results}.scrollWidth <= {results}.clientWidth")
