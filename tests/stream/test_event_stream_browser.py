"""A real browser's EventSource follows a run: it resumes after a dropped
connection without repeats, and stops for good after `end` (204)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runs import services
from tests.browser import CHROMIUM, page_opener
from tests.factories import new_run
from tests.stream.support import append, stream_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser_server(tmp_path: Path) -> Iterator:
    # A short retry so the browser reconnects quickly after a drop.
    with stream_server(tmp_path, SSE_RETRY_MS="200") as server:
        yield server


@pytest.fixture
def open_page(tmp_path: Path) -> Iterator:
    with page_opener(tmp_path) as open_:
        yield open_


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_a_browser_event_source_resumes_after_a_drop_and_stops_after_end(browser_server, open_page):
    url = browser_server.url
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    append(run_id, 3)

    def report() -> dict | None:
        return httpx.get(f"{url}/_test/report", timeout=5).json()

    def seen() -> list[str]:
        return (report() or {}).get("seen", [])

    open_page(f"{url}/_test/eventsource.html?run={run_id}")
    wait_for(lambda: "checkpoint:3" in seen(), timeout=30, what="the browser to replay three checkpoints")

    # Drop the connection; write while the browser is away.
    httpx.post(f"{url}/_test/drop-streams", timeout=5)
    append(run_id, 2)
    wait_for(lambda: "checkpoint:5" in seen(), timeout=20, what="the browser to resume")

    services.set_run_status(run_id, "completed")
    final = wait_for(lambda: (report() or {}).get("readyState") == 2 and report(), timeout=20, what="CLOSED")

    checkpoints = [item for item in final["seen"] if item.startswith("checkpoint:")]
    assert checkpoints == [f"checkpoint:{n}" for n in range(1, 6)]  # resumed: nothing twice
    assert final["seen"].count("hello") == 2
    # Each close makes EventSource reconnect (error, CONNECTING); the 204 closes it (CLOSED).
    assert final["seen"][-4:] == ["status:completed", "end", "error:0", "error:2"]

    requests = httpx.get(f"{url}/_test/requests", timeout=5).json()
    assert [r["status"] for r in requests] == [200, 200, 204]
    assert requests[0]["lastEventId"] == ""
    assert requests[1]["lastEventId"]  # the third checkpoint's ts, sent by the browser
    assert requests[2]["lastEventId"] == final["lastEventId"]  # the end's id


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_a_browser_keeps_a_live_run_list_and_resumes_it_without_loss(browser_server, open_page):
    from journal.models import Entry
    from tests.stream.run_list import wait_live

    url = browser_server.url
    owner = "browser-list"

    def report() -> dict:
        return httpx.get(f"{url}/_test/report", timeout=5).json() or {}

    def lifecycle(final: str) -> str:
        run, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner=owner)
        services.set_run_status(run.id, "running")
        if final == "canceled":
            services.cancel_run(run.id)
        else:
            services.set_run_status(run.id, final)
        return str(run.id)

    open_page(f"{url}/_test/runlist.html?owner={owner}")
    wait_live(browser_server)
    first = lifecycle("completed")
    wait_for(lambda: len(report().get("ids", [])) == 3, timeout=30, what="the browser to list the first run")

    # Drop the connection; runs change while the browser is away.
    httpx.post(f"{url}/_test/drop-streams", timeout=5)
    away = [lifecycle("failed"), lifecycle("canceled")]
    services.create_run(mode="redis", spec={"task": "sleep"}, owner="someone-else")
    final = wait_for(lambda: len(report().get("ids", [])) >= 9 and report(), timeout=30, what="the resume")

    expected = list(Entry.objects.filter(owner=owner).order_by("id").values_list("id", flat=True))
    assert final["ids"] == expected  # every entry once, in order, across the drop
    assert final["statuses"] == {first: "completed", away[0]: "failed", away[1]: "canceled"}
    requests = [r for r in httpx.get(f"{url}/_test/requests", timeout=5).json() if r["status"] == 200]
    assert [r["lastEventId"] for r in requests] == ["", str(expected[2])]
