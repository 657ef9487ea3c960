"""The browser story with a tenant key: the page's backend mints a list stream
token with a narrow (read-only) key, and the page, holding no key at all,
keeps a live run list of that tenant's runs alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runs import services
from tenants import services as tenant_services
from tests.browser import CHROMIUM, page_opener
from tests.stream.run_list import wait_live
from tests.stream.support import stream_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MASTER = "master-key-of-the-browser-test-0123456789"


@pytest.fixture
def keyed_stream_server(tmp_path: Path) -> Iterator:
    with stream_server(tmp_path, SSE_RETRY_MS="200", ORCHESTRATOR_API_KEY=MASTER) as server:
        yield server


@pytest.fixture
def open_page(tmp_path: Path) -> Iterator:
    with page_opener(tmp_path) as open_:
        yield open_


def finished_run(owner: str) -> str:
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner=owner)
    services.set_run_status(run.id, "running")
    services.set_run_status(run.id, "completed")
    return str(run.id)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_a_page_behind_a_tenant_backend_lists_that_tenants_runs_with_a_token_only(
    keyed_stream_server, open_page
):
    url = keyed_stream_server.url
    # The frontend's backend holds a read-only key of one tenant.
    _, dashboard_key = tenant_services.create_key(name="dashboard", owner="acme", scopes=["runs:read"])
    backend = {"Authorization": f"Bearer {dashboard_key}"}
    assert httpx.post(f"{url}/runs?mode=redis", json={}, headers=backend).status_code == 403
    minted = httpx.post(f"{url}/runs/stream-token", headers=backend)
    assert minted.status_code == 200, minted.content
    token = minted.json()["token"]

    def report() -> dict:
        return httpx.get(f"{url}/_test/report", timeout=5).json() or {}

    # The page gets the token alone, and asks for no owner: the token knows it.
    open_page(f"{url}/_test/runlist.html?token={token}")
    wait_live(keyed_stream_server)
    first = finished_run("acme")
    wait_for(lambda: first in report().get("statuses", {}), timeout=30, what="the page to list acme's run")
    # Another tenant's runs, then one more of acme's: a leak would arrive before it.
    others = [finished_run("globex") for _ in range(2)]
    last = finished_run("acme")
    final = wait_for(
        lambda: report().get("statuses", {}).get(last) == "completed" and report(),
        timeout=30,
        what="the page to list acme's second run as completed",
    )

    assert final["statuses"] == {first: "completed", last: "completed"}
    assert not set(others) & set(final["statuses"])
    assert len(final["ids"]) == 6  # created, running, completed of each of acme's two runs
    requests = httpx.get(f"{url}/_test/requests", timeout=5).json()
    assert [r["status"] for r in requests] == [200]
