"""The reference worker, as a real process, running runs created over the API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from tests.redis_workers import WorkerProcess, drop_keys, process_alive, unique_prefix
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def prefix():
    value = unique_prefix()
    with override_settings(REDIS_KEY_PREFIX=value):
        yield value
    drop_keys(value)


@pytest.fixture(scope="module")
def worker(prefix, django_db_setup, django_db_blocker, tmp_path_factory):
    process = WorkerProcess(tmp_path_factory.mktemp("workers"), prefix, concurrency=3).start()
    yield process
    process.stop()


def create(api, spec):
    response = api.post("/runs?mode=redis", {"spec": spec})
    assert response.status_code == 201, response.content
    return response.json()["run"]


def get_run(api, run_id):
    return api.get(f"/runs/{run_id}").json()["run"]


def wait_status(api, run_id, *statuses, timeout=10.0):
    return wait_for(lambda: (run := get_run(api, run_id))["status"] in statuses and run, timeout=timeout)


def checkpoints(api, run_id):
    return api.get(f"/runs/{run_id}/checkpoints?limit=1000").json()["checkpoints"]


def lease_held(run_id: str) -> bool:
    conn = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return bool(conn.exists(f"{settings.REDIS_KEY_PREFIX}lease:{run_id}"))
    finally:
        conn.close()


def test_a_run_goes_from_pending_through_running_to_completed_with_its_checkpoints(worker, api):
    run = create(api, {"task": "sleep", "input": {"seconds": 0.6, "checkpoints": 3}})
    assert run["status"] == "pending"

    running = wait_status(api, run["id"], "running", "completed")
    done = wait_status(api, run["id"], "completed")

    assert running["status"] == "running", "the run was never seen running"
    assert done["error"] is None and done["attempt"] == 1
    assert done["startedAt"] <= done["finishedAt"]
    written = checkpoints(api, run["id"])
    assert [(c["seq"], c["type"], c["data"]) for c in written] == [
        (1, "progress", {"step": 1, "of": 3}),
        (2, "progress", {"step": 2, "of": 3}),
        (3, "progress", {"step": 3, "of": 3}),
    ]


def test_a_command_run_turns_each_json_object_line_into_a_checkpoint(worker, api):
    script = "\n".join(
        [
            "import json, os",
            'print(json.dumps({"type": "step", "data": {"n": 1}}))',
            'print("plain text is not a checkpoint")',
            'print("[1, 2]")',
            'print(json.dumps({"type": "nul", "data": "a\\u0000b"}))',  # PostgreSQL cannot store it: dropped
            'print(json.dumps({"loss": 0.5}))',
            'print(json.dumps({"type": "env", "data": {"greeting": os.environ.get("GREETING"),'
            ' "secretLeaked": "SECRET_KEY" in os.environ or "DATABASE_URL" in os.environ,'
            ' "runId": os.environ["ORCHESTRATOR_RUN_ID"]}}))',
        ]
    )
    run = create(
        api, {"task": "command", "command": [sys.executable, "-c", script], "env": {"GREETING": "hi"}}
    )

    done = wait_status(api, run["id"], "completed", "failed")

    assert done["status"] == "completed", done["error"]
    assert [(c["type"], c["data"]) for c in checkpoints(api, run["id"])] == [
        ("step", {"n": 1}),
        ("stdout", {"loss": 0.5}),
        ("env", {"greeting": "hi", "secretLeaked": False, "runId": run["id"]}),
    ]


def test_a_worker_runs_no_command_unless_started_with_worker_allow_command(api, tmp_path):
    marker = tmp_path / "ran"
    own_queue = unique_prefix()  # so that the module's worker, which may, does not take it
    wary = WorkerProcess(tmp_path, own_queue, concurrency=1)
    wary.env.pop("WORKER_ALLOW_COMMAND")  # as `make worker` starts it: the setting unset
    wary.start()
    try:
        with override_settings(REDIS_KEY_PREFIX=own_queue):
            run = create(api, {"task": "command", "command": ["touch", str(marker)]})
        done = wait_status(api, run["id"], "completed", "failed")
    finally:
        wary.stop()
        drop_keys(own_queue)

    assert done["status"] == "failed"
    assert done["error"]["code"] == "command_not_allowed"
    assert "WORKER_ALLOW_COMMAND=true" in done["error"]["message"]
    assert not marker.exists()


def test_a_command_that_exits_non_zero_fails_the_run_with_its_exit_code(worker, api):
    script = "import sys; print('disk full', file=sys.stderr); raise SystemExit(3)"
    run = create(api, {"task": "command", "command": [sys.executable, "-c", script]})

    done = wait_status(api, run["id"], "completed", "failed")

    assert done["status"] == "failed"
    assert done["error"]["code"] == "command_failed"
    assert done["error"]["exitCode"] == 3
    assert done["error"]["stderrTail"] == "disk full\n"


def test_an_unknown_task_or_a_task_that_raises_fails_the_run(worker, api):
    unknown = create(api, {"task": "no-such-task"})
    raising = create(api, {"task": "fail"})

    assert wait_status(api, unknown["id"], "failed")["error"]["code"] == "unknown_task"
    error = wait_status(api, raising["id"], "failed")["error"]
    assert error == {"code": "task_error", "message": "RuntimeError: the task gave up"}


def _command_that_reports_sigterm(marker: Path, *, ignore_sigterm: bool = False) -> list[str]:
    handler = "signal.SIG_IGN" if ignore_sigterm else "on_term"
    script = f"""
import json, os, signal, sys, time
def on_term(signum, frame):
    # Written aside, then renamed: the test must never see the marker empty.
    with open({str(marker) + ".tmp"!r}, "w") as out:
        out.write(repr(time.time()))
    os.replace({str(marker) + ".tmp"!r}, {str(marker)!r})
    sys.exit(0)
signal.signal(signal.SIGTERM, {handler})
print(json.dumps({{"type": "pid", "data": os.getpid()}}), flush=True)
while True:
    time.sleep(0.05)
    print(json.dumps({{"type": "tick"}}), flush=True)
"""
    return [sys.executable, "-c", script]


def test_canceling_a_running_command_run_ends_its_subprocess_within_a_second(worker, api, tmp_path):
    marker = tmp_path / "terminated"
    run = create(api, {"task": "command", "command": _command_that_reports_sigterm(marker)})
    wait_for(lambda: get_run(api, run["id"])["checkpointCount"] >= 2)

    canceled_at = time.time()
    response = api.delete(f"/runs/{run['id']}")

    assert response.status_code == 200 and response.json()["status"] == "canceled"
    wait_for(marker.exists, timeout=5)
    assert float(marker.read_text()) - canceled_at < 1.0
    wait_for(lambda: not lease_held(run["id"]), timeout=5)
    after = get_run(api, run["id"])
    assert after["status"] == "canceled"
    assert after["checkpointCount"] == response.json()["run"]["checkpointCount"]


def test_a_subprocess_that_ignores_sigterm_is_killed_after_the_grace_period(worker, api, tmp_path):
    run = create(
        api,
        {"task": "command", "command": _command_that_reports_sigterm(tmp_path / "x", ignore_sigterm=True)},
    )
    wait_for(lambda: checkpoints(api, run["id"]))
    pid = checkpoints(api, run["id"])[0]["data"]
    assert process_alive(pid)

    api.delete(f"/runs/{run['id']}")

    wait_for(lambda: not process_alive(pid), timeout=5)
    assert get_run(api, run["id"])["status"] == "canceled"


def test_a_run_past_its_timeout_is_stopped_and_failed_with_timeout(worker, api, tmp_path):
    marker = tmp_path / "terminated"
    sleeper = create(api, {"task": "sleep", "input": {"seconds": 60}, "timeoutSeconds": 0.5})
    command = create(
        api, {"task": "command", "command": _command_that_reports_sigterm(marker), "timeoutSeconds": 0.5}
    )

    for run in (sleeper, command):
        done = wait_status(api, run["id"], "completed", "failed", "canceled")
        assert done["status"] == "failed"
        assert done["error"]["code"] == "timeout"
    wait_for(marker.exists, timeout=5)
    wait_for(lambda: not lease_held(sleeper["id"]), timeout=5)


def test_the_worker_lists_its_tasks(worker):
    out = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--list-tasks"],
        env=worker.env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"sleep", "command", "probe"} <= set(out)
