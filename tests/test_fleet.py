"""The fleet from the workers' heartbeats (`runs_workers`), and a killed
worker's run found by `runs_requeue_stale` with no other worker alive."""

from __future__ import annotations

import json
import socket
from io import StringIO

import pytest
from django.core.management import call_command

from runs import services
from runs.models import Run
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prefix(settings):
    value = settings.REDIS_KEY_PREFIX = unique_prefix()
    settings.WORKER_LEASE_SECONDS = 1.5  # as the workers below, so "gone" means the same here
    yield value
    drop_keys(value)


def fleet() -> list[dict]:
    out = StringIO()
    call_command("runs_workers", "--json", stdout=out, stderr=StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def worker_named(name_part: str) -> dict | None:
    return next((worker for worker in fleet() if f"-{name_part}-" in worker["name"]), None)


def test_a_worker_is_listed_alive_with_its_runs_then_gone_once_killed(prefix, tmp_path):
    worker = WorkerProcess(tmp_path, prefix, concurrency=3).start()
    try:
        run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {"seconds": 30}})
        alive = wait_for(
            lambda: (record := worker_named(str(worker.pid))) and record["runs"] and record, timeout=20
        )
        assert alive["state"] == "alive"
        assert alive["host"] == socket.gethostname() and alive["pid"] == worker.pid
        assert (alive["slots"], alive["busy"], alive["runs"]) == (3, 1, [str(run.id)])
        assert alive["secondsSinceHeartbeat"] < 1.5

        worker.kill()

        gone = wait_for(lambda: (record := worker_named(str(worker.pid)))["state"] == "gone" and record)
        assert gone["runs"] == [str(run.id)]  # what it held when it died
        assert Run.objects.get(pk=run.pk).status == "running"

        out = StringIO()
        call_command(
            "runs_requeue_stale", "--older-than", "0s", "--confirm-after", "0", "--json", stdout=out,
            stderr=StringIO(),
        )  # fmt: skip
        assert [json.loads(line)["action"] for line in out.getvalue().splitlines()] == ["resent"]

        successor = WorkerProcess(tmp_path, prefix).start()
        try:
            # The fresh entry goes to the next reader at once, not after a reclaim.
            finished = wait_for(lambda: (fresh := Run.objects.get(pk=run.pk)).attempt == 2 and fresh)
            assert finished.status == "running"
            wait_for(lambda: worker_named(str(successor.pid))["runs"] == [str(run.id)])
        finally:
            successor.terminate()
            successor.stop()
    finally:
        worker.kill()


def test_a_worker_stopped_cleanly_says_so_and_the_table_shows_the_fleet(prefix, tmp_path):
    worker = WorkerProcess(tmp_path, prefix).start()
    wait_for(lambda: worker_named(str(worker.pid)))
    table = StringIO()
    summary = StringIO()
    call_command("runs_workers", stdout=table, stderr=summary)

    worker.terminate()
    worker.stop()

    assert table.getvalue().splitlines()[0].split() == [
        "NAME", "HOST", "PID", "SLOTS", "BUSY", "HEARTBEAT", "STATE", "RUNS",
    ]  # fmt: skip
    row = table.getvalue().splitlines()[1].split()
    assert (row[2], row[3], row[4], row[6], row[7]) == (str(worker.pid), "2", "0", "alive", "-")
    assert summary.getvalue().startswith("1 alive, 0 gone or stopped")
    assert worker_named(str(worker.pid))["state"] == "stopped"
    out = StringIO()
    call_command("runs_workers", "--alive", "--json", stdout=out)
    assert out.getvalue() == ""


def test_runs_workers_with_redis_down_is_one_line(settings):
    from django.core.management.base import CommandError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"

    with pytest.raises(CommandError, match=f"Redis at 127.0.0.1:{port}/0 is unreachable"):
        call_command("runs_workers", stdout=StringIO())
