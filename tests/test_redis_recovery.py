"""Fault paths of Redis mode with real worker processes: dead workers, a
restarted Redis, duplicate deliveries, shutdown."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings

from runs.exceptions import BackendUnavailable
from runs.models import Checkpoint, Run
from runs.redis import queue as run_queue
from tests.redis_workers import (
    TEST_WORKER_ENV,
    WorkerProcess,
    drop_keys,
    process_alive,
    unique_prefix,
)
from tests.servers import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prefix(settings):
    value = settings.REDIS_KEY_PREFIX = unique_prefix()
    url = settings.REDIS_URL  # a test may point settings at a Redis of its own meanwhile
    yield value
    drop_keys(value, url)


@pytest.fixture
def workers(prefix, tmp_path):
    started: list[WorkerProcess] = []

    def start(count: int = 1, *, wait: bool = True, **options: str) -> list[WorkerProcess]:
        batch = [WorkerProcess(tmp_path, prefix, **options).start(wait_ready=False) for _ in range(count)]
        started.extend(batch)
        if wait:
            for worker in batch:
                wait_for(worker._ready, timeout=30)
        return batch

    yield start
    for worker in started:  # all at once: each takes up to a second to wind down
        worker.terminate()
    for worker in started:
        worker.stop()


def create(spec):
    from runs import services

    run, _ = services.create_run(mode="redis", spec=spec)
    return run


def reload(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def final(run: Run, timeout: float = 20.0) -> Run:
    return wait_for(lambda: (fresh := reload(run)).is_final and fresh, timeout=timeout)


def lease_holder(run: Run, url: str | None = None) -> str | None:
    conn = redis.Redis.from_url(url or settings.REDIS_URL, decode_responses=True)
    try:
        return conn.get(f"{settings.REDIS_KEY_PREFIX}lease:{run.pk}")
    finally:
        conn.close()


def test_a_worker_killed_mid_run_is_replaced_and_attempts_are_counted(workers):
    (first,) = workers(concurrency=2)
    retried = create({"task": "sleep", "input": {"seconds": 1, "checkpoints": 4}, "maxAttempts": 2})
    script = "import json, os, time; print(json.dumps({'type': 'pid', 'data': os.getpid()}), flush=True)"
    script += "; time.sleep(60)"
    spent = create({"task": "command", "command": [sys.executable, "-c", script], "maxAttempts": 1})
    wait_for(lambda: reload(retried).checkpoint_count >= 1 and reload(spent).checkpoint_count >= 1)
    pid = Checkpoint.objects.get(run=spent, seq=1).data
    (second,) = workers(wait=False)

    first.kill()

    retried, spent = final(retried), final(spent)
    assert (retried.status, retried.attempt, retried.error) == ("completed", 2, None)
    assert retried.checkpoint_count >= 5, "the second attempt ran the task again from the start"
    assert (spent.status, spent.attempt, spent.error["code"]) == ("failed", 1, "worker_lost")
    assert second.log().count("reclaimed runs of a silent worker") >= 1
    wait_for(lambda: not process_alive(pid), timeout=5)


def test_three_workers_never_run_the_same_run_at_once(workers):
    runs = [create({"task": "probe", "input": {"seconds": 0.05}}) for _ in range(40)]
    queue = run_queue.run_queue()
    for run in runs:  # a duplicate delivery of every run, as a lost acknowledgement would cause
        queue.redis.xadd(queue.keys.stream, run_queue.entry_fields(run))

    workers(3, concurrency=2)

    assert all(final(run).status == "completed" for run in runs)
    marks: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for point in Checkpoint.objects.filter(run__in=runs).order_by("seq"):
        marks[str(point.run_id)].append((point.type, point.data))
    for run in runs:
        assert [kind for kind, _ in marks[str(run.pk)]] == ["start", "end"], "a run was executed twice"
    intervals = sorted((data["t"], kind, data["pid"]) for points in marks.values() for kind, data in points)
    assert len({pid for _, _, pid in intervals}) >= 2, "the work was not shared between workers"


def test_sigterm_lets_a_worker_hand_back_a_run_it_cannot_finish(workers):
    (leaving,) = workers(WORKER_SHUTDOWN_GRACE_SECONDS="0.2")
    # Long enough that the first attempt is still running once the second
    # worker has started, however slowly a loaded host starts it.
    run = create({"task": "sleep", "input": {"seconds": 8, "checkpoints": 4}, "maxAttempts": 3})
    wait_for(lambda: reload(run).status == "running")
    workers()  # the one that takes over

    assert leaving.stop(timeout=10) == 0

    done = final(run)
    assert (done.status, done.attempt) == ("completed", 2)
    assert "run handed back" in leaving.log()


def consumers(prefix: str) -> dict[str, int]:
    """The group's consumers and how many entries each holds."""
    queue = run_queue.run_queue()
    try:
        rows = queue.redis.xinfo_consumers(queue.keys.stream, queue.keys.group)
    except redis.ResponseError:
        return {}
    return {row["name"]: row["pending"] for row in rows}


def test_a_worker_that_stops_cleanly_leaves_the_consumer_group(workers, prefix):
    (worker,) = workers()
    assert len(consumers(prefix)) == 1

    assert worker.stop(timeout=10) == 0

    assert consumers(prefix) == {}


def test_the_sweep_forgets_gone_workers_but_never_one_holding_a_run(prefix):
    from runs.redis.worker import recovery

    queue = run_queue.run_queue()
    queue.ensure_group("gone-idle")
    queue.ensure_group("gone-holding")
    queue.redis.xadd(queue.keys.stream, {"runId": "not-a-run"})
    queue.redis.xreadgroup(queue.keys.group, "gone-holding", {queue.keys.stream: ">"}, count=1)

    # With no lease period, any consumer idle at all counts as gone.
    recovery.sweep(queue, holder="test", interval_s=1, lease_ms=0, force=True)

    # Removing the holder would drop its entry from every pending list, out of
    # reach of the reclaim; it stays until another worker has taken the entry.
    assert consumers(prefix) == {"gone-holding": 1}


class PrivateRedis:
    """A redis-server of the test's own, configured as CI runs it (no persistence)."""

    def __init__(self, tmp_path, *, persistent: bool = False) -> None:
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        keep = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        argv += ["--save", "", *keep, "--dir", str(self.dir)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = redis.Redis.from_url(self.url)
        wait_for(lambda: self._pings(conn), timeout=10)
        conn.close()

    @staticmethod
    def _pings(conn: redis.Redis) -> bool:
        try:
            return bool(conn.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@contextmanager
def private_redis(tmp_path, *, persistent: bool = False):
    server = PrivateRedis(tmp_path, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_a_redis_restart_loses_no_queued_run(workers, settings, tmp_path):
    settings.REDIS_DISPATCH_BACKOFF_SECONDS = 0
    with private_redis(tmp_path) as server:
        settings.REDIS_URL = server.url
        (worker,) = workers(concurrency=1, REDIS_URL=server.url)
        queued = [create({"task": "sleep", "input": {"seconds": 0.3}}) for _ in range(5)]
        wait_for(lambda: reload(queued[0]).status == "running")

        server.kill()  # everything in Redis is gone: the stream, the group, the leases
        with pytest.raises(BackendUnavailable):  # refused, not recorded to wait for ever
            create({"task": "sleep", "input": {"seconds": 0}})
        server.start()

        for run in queued:
            assert final(run, timeout=30).status == "completed", worker.log()
        assert all(reload(run).attempt == 1 for run in queued[1:])
        assert Run.objects.count() == len(queued)


def _taken_over(run: Run) -> bool:
    fresh = reload(run)
    return fresh.attempt == 2 and fresh.status == "running"


@pytest.mark.parametrize("persistent", [True, False], ids=["redis-kept-its-data", "redis-lost-its-data"])
def test_a_dead_workers_run_is_taken_over_within_the_documented_bound_across_a_redis_restart(
    workers, settings, tmp_path, persistent
):
    lease = float(TEST_WORKER_ENV["WORKER_LEASE_SECONDS"])
    sweep = float(TEST_WORKER_ENV["WORKER_SWEEP_INTERVAL_SECONDS"])
    # docs/references/worker-protocol.md, "How fast a lost run comes back", and
    # three seconds of slack for a busy host.
    documented = (1.5 * lease if persistent else lease + sweep) + 1.5
    bound = documented + 3.0
    with private_redis(tmp_path, persistent=persistent) as server:
        settings.REDIS_URL = server.url
        first, second = workers(2, concurrency=1, REDIS_URL=server.url)
        run = create({"task": "sleep", "input": {"seconds": 60, "checkpoints": 60}, "maxAttempts": 2})
        wait_for(lambda: reload(run).status == "running", timeout=20)
        holder = first if f"-{first.pid}-" in (lease_holder(run, server.url) or "") else second

        holder.kill()
        server.kill()
        server.start()
        back = time.monotonic()
        wait_for(lambda: _taken_over(run), timeout=bound + 30, interval=0.05)
        elapsed = time.monotonic() - back

    assert elapsed <= bound, f"taken over {elapsed:.1f} s after Redis came back (bound {bound:.1f} s)"
