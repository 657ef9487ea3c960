"""The admin's run page, in a real headless Chromium against a real server
process: its script follows the run's event stream and shows what happens
after the page opened, and catches up after the server goes away and back."""

from __future__ import annotations

import signal

import httpx
import pytest
from django.conf import settings
from django.test import Client

from runs import services
from runs.models import Run
from tests.browser import CHROMIUM, chromium
from tests.servers import ServerProcess, running_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]

ROWS = (
    "[...document.querySelectorAll('#run-checkpoints-body tr[data-ts]')].map(r => r.children[2].textContent)"
)
LIVE_STATE = "document.getElementById('run-live') && document.getElementById('run-live').dataset.state"
# The script replaces the page's initial "idle" as soon as it runs.
SCRIPT_STARTED = f"({LIVE_STATE}) !== 'idle' && ({LIVE_STATE})"
LIVE_STATUS = "document.querySelector('[data-live-status]').textContent"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module: starting it is the slow part."""
    with chromium(tmp_path_factory.mktemp("chromium")) as started:
        yield started


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    """A server of this module's own: a page load is a dozen requests, whose
    log lines would crowd the shared server's log that other tests read."""
    with running_server(tmp_path_factory.mktemp("admin-live")) as started:
        yield started


@pytest.fixture
def session_cookie(django_user_model) -> str:
    """A superuser's session, committed so the server process sees it."""
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-unused-123")
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def open_run_page(browser, server, cookie: str, run: Run) -> None:
    browser.set_cookie(server.url, settings.SESSION_COOKIE_NAME, cookie)
    browser.open(f"{server.url}/admin/runs/run/{run.pk}/change/")


def a_running_run_with_one_checkpoint() -> Run:
    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    services.set_run_status(run.id, "running")
    services.append_checkpoints(run.id, [{"type": "before-open", "data": {"n": 1}}])
    return run


def test_a_finished_runs_page_shows_all_of_it_and_opens_no_stream(server, session_cookie, browser):
    run = a_running_run_with_one_checkpoint()
    services.set_run_status(run.id, "completed")

    open_run_page(browser, server, session_cookie, run)
    state = browser.wait_for(SCRIPT_STARTED, what="the live script to start")

    assert state == "finished"
    assert browser.evaluate(ROWS) == ["before-open"]
    assert browser.evaluate(LIVE_STATUS) == "completed"


def test_the_run_page_appends_a_checkpoint_and_status_that_arrive_after_it_opened(
    server, session_cookie, browser
):
    run = a_running_run_with_one_checkpoint()

    open_run_page(browser, server, session_cookie, run)
    browser.wait_for(f"{LIVE_STATE} === 'live'", what="the event stream to open")
    services.append_checkpoints(run.id, [{"type": "after-open", "data": {"n": 2}}])
    browser.wait_for(f"{ROWS}.includes('after-open')", what="the new checkpoint row")
    services.set_run_status(run.id, "completed")
    browser.wait_for(f"{LIVE_STATE} === 'finished'", what="the end of the stream")

    assert browser.evaluate(ROWS) == ["before-open", "after-open"]
    assert browser.evaluate(LIVE_STATUS) == "completed"
    assert browser.evaluate("document.querySelector('[data-live-log]').textContent").count("completed") >= 1


def test_the_run_page_catches_up_after_the_server_goes_away_and_comes_back(session_cookie, browser, tmp_path):
    run = a_running_run_with_one_checkpoint()

    with running_server(tmp_path) as server:
        open_run_page(browser, server, session_cookie, run)
        browser.wait_for(f"{LIVE_STATE} === 'live'", what="the event stream to open")

        server.stop(signal.SIGKILL)
        browser.wait_for(f"{LIVE_STATE} !== 'live'", what="the page to notice the drop")
        services.append_checkpoints(run.id, [{"type": "while-away", "data": {"n": 2}}])
        back = ServerProcess(server.argv, server.port, server.env, server.log_path).start()
        try:
            browser.wait_for(f"{ROWS}.includes('while-away')", what="the missed checkpoint", timeout=30)
            services.append_checkpoints(run.id, [{"type": "after-return", "data": {"n": 3}}])
            browser.wait_for(f"{ROWS}.includes('after-return')", what="a checkpoint after the return")
        finally:
            back.stop()

        assert browser.evaluate(ROWS) == ["before-open", "while-away", "after-return"]


def test_the_run_page_follows_the_stream_when_the_api_needs_a_key(session_cookie, browser, tmp_path):
    run = a_running_run_with_one_checkpoint()

    with running_server(tmp_path, ORCHESTRATOR_API_KEY="ops-test-key") as server:
        assert httpx.get(f"{server.url}/runs/{run.pk}").status_code == 401  # the key is required
        open_run_page(browser, server, session_cookie, run)
        browser.wait_for(f"{LIVE_STATE} === 'live'", what="the event stream to open with the page's token")
        services.append_checkpoints(run.id, [{"type": "after-open"}])
        browser.wait_for(f"{ROWS}.includes('after-open')", what="the new checkpoint row")

        page = browser.evaluate("document.documentElement.outerHTML")
        assert "ops-test-key" not in page
