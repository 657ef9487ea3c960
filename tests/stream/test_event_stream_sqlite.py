"""With the embedded SQLite database the stream works without LISTEN:
in-process wake-ups after commit, and a short poll for other processes' writes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import ROOT, process_env
from tests.stream.run_list import entries, read_list, wait_live
from tests.stream.support import read_events, stream_server


def migrated_sqlite(tmp_path: Path) -> dict[str, str]:
    """The settings of a server on a new, migrated embedded database with a short poll."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}", "SSE_POLL_SECONDS": "0.2"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=process_env(**env), check=True,
    )  # fmt: skip
    return env


def test_on_sqlite_in_process_and_other_process_writes_reach_the_stream(tmp_path):
    env = migrated_sqlite(tmp_path)
    with stream_server(tmp_path, **env) as server:
        run_id = httpx.post(f"{server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}).json()["runId"]
        arrival: dict[int, float] = {}

        def on_event(event):
            if event.event == "hello":
                # Same process as the stream: woken after commit.
                httpx.post(f"{server.url}/runs/{run_id}/checkpoints", json={"type": "a", "data": 1})
            elif event.event == "checkpoint":
                arrival[event.json()["seq"]] = time.monotonic()
                if event.json()["seq"] == 1:
                    # Another process (a management command): found by the poll.
                    script = (
                        "from runs import services; "
                        f"services.append_checkpoints('{run_id}', [{{'type': 'b', 'data': 2}}]); "
                        f"services.set_run_status('{run_id}', 'running'); "
                        f"services.set_run_status('{run_id}', 'completed')"
                    )
                    subprocess.run(
                        [sys.executable, "manage.py", "shell", "-c", script],
                        cwd=ROOT, env=process_env(**env), check=True,
                    )  # fmt: skip

        events = read_events(server, run_id, on_event=on_event)

    # Each status change arrives, even when the poll finds the run already completed.
    statuses = [(e.event, e.json()["status"]) for e in events if e.event in ("status", "end")]
    assert statuses == [("status", "running"), ("status", "completed"), ("end", "completed")], [
        (e.event, e.data, e.id, e.retry) for e in events
    ]
    assert events[0].event == "hello" and events[-1].event == "end"
    assert [e.json()["seq"] for e in events if e.event == "checkpoint"] == [1, 2]


def test_on_sqlite_the_run_list_follows_this_process_and_others(tmp_path):
    env = migrated_sqlite(tmp_path)
    with stream_server(tmp_path, **env) as server:
        made: dict[str, str] = {}

        def change() -> None:
            wait_live(server)
            # Same process as the stream: woken after commit.
            made["run"] = httpx.post(
                f"{server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}
            ).json()["runId"]
            # Another process (a management command): found by the poll.
            script = f"from runs import services; services.set_run_status('{made['run']}', 'running')"
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", script],
                cwd=ROOT,
                env=process_env(**env),
                check=True,
            )

        events = read_list(server, on_open=change, until=lambda ev: len(entries(ev)) == 2)

    assert [(t, r) for _, t, r in entries(events)] == [
        ("run.created", made["run"]),
        ("run.running", made["run"]),
    ]
    assert [i for i, _, _ in entries(events)] == [1, 2]
