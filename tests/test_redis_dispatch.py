"""Dispatch to the Redis stream, in process, against the real Redis."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from runs import services, tokens
from runs.backends import get_backend
from runs.models import Run
from runs.redis import queue as run_queue
from runs.redis.worker import recovery
from tests.servers import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 1}, "maxAttempts": 2}


def entries(queue):
    return queue.redis.xrange(queue.keys.stream)


def sweep(queue) -> int:
    return recovery.sweep(queue, holder="test", interval_s=1, lease_ms=1000, force=True)


def test_creating_a_redis_run_puts_exactly_one_entry_on_the_stream(api, queue):
    response = api.post("/runs?mode=redis", {"spec": SPEC})

    run = response.json()["run"]
    [(entry_id, fields)] = entries(queue)
    assert set(fields) == {"v", "runId", "task", "spec", "token", "createdAt", "priority"}
    assert fields["priority"] == "5"
    assert fields["v"] == "1" and fields["runId"] == run["id"] and fields["task"] == "sleep"
    assert json.loads(fields["spec"]) == SPEC
    assert fields["createdAt"] == run["createdAt"]
    assert tokens.verify(fields["token"], kind=tokens.WORKER, run_id=run["id"])
    assert queue.redis.get(queue.keys.guard(run["id"])) == entry_id


def test_a_run_whose_transaction_rolls_back_is_never_sent(queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_run(mode="redis", spec=SPEC)
        raise RuntimeError("the request failed after creating the run")

    assert entries(queue) == []
    assert not Run.objects.exists()


def test_plan_mode_shows_the_exact_entry_and_sends_nothing(api, queue):
    response = api.post("/runs?mode=plan&target=redis", {"spec": SPEC})

    dispatch = response.json()["plan"]["dispatch"]
    assert dispatch["command"] == "XADD"
    assert dispatch["stream"] == queue.keys.stream and dispatch["consumerGroup"] == queue.keys.group
    assert dispatch["entry"]["task"] == "sleep" and json.loads(dispatch["entry"]["spec"]) == SPEC
    assert dispatch["entry"]["token"] == run_queue.TOKEN_PLACEHOLDER
    assert entries(queue) == [] and not Run.objects.exists()


def test_when_redis_is_down_a_create_is_a_503_and_records_nothing(api, queue, settings):
    reachable = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    # No back-off, so that the next create (here and in later tests) asks Redis again.
    settings.REDIS_DISPATCH_BACKOFF_SECONDS = 0

    response = api.post("/runs?mode=redis", {"spec": SPEC})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["code"] == "backend_unavailable" and body["error"] == "Redis not reachable"
    assert body["details"]["backend"] == "redis"
    assert not Run.objects.exists()
    settings.REDIS_URL = reachable
    assert api.post("/runs?mode=redis", {"spec": SPEC}).status_code == 201
    assert len(entries(queue)) == 1


def test_a_run_that_missed_its_entry_is_sent_by_the_sweep_once(api, queue):
    run, _ = services.create_run(mode="redis", spec=SPEC)
    queue.redis.delete(queue.keys.stream, queue.keys.guard(str(run.id)))  # the enqueue after commit was lost
    queue.ensure_group()

    assert sweep(queue) == 1
    assert [fields["runId"] for _, fields in entries(queue)] == [str(run.id)]
    assert sweep(queue) == 0, "a second sweep must not queue the run twice"


def test_a_redis_run_without_a_spec_is_never_queued(api, queue):
    response = api.post("/runs?mode=redis", "")  # no body, as the seed frontend sends it

    assert response.status_code == 201
    run_id = response.json()["runId"]
    assert entries(queue) == [] and sweep(queue) == 0
    assert queue.redis.get(queue.keys.guard(run_id)) is None
    appended = api.post(f"/runs/{run_id}/checkpoints", {"type": "progress", "data": {"pct": 10}})
    assert appended.status_code == 201


def test_ensure_dispatched_only_resends_a_run_the_queue_lost(queue):
    run, _ = services.create_run(mode="redis", spec=SPEC)
    backend = get_backend("redis")

    assert backend.ensure_dispatched(run) is False
    queue.redis.delete(queue.keys.stream)  # Redis lost the stream (restart without persistence)
    assert backend.ensure_dispatched(run) is True
    assert backend.ensure_dispatched(run) is False
    assert len(entries(queue)) == 1


def test_cancel_is_announced_to_workers_at_once(api, queue):
    run = api.post("/runs?mode=redis", {"spec": SPEC}).json()["run"]
    pubsub = queue.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(queue.keys.cancel_channel)
    try:
        api.delete(f"/runs/{run['id']}")
        message = wait_for(lambda: pubsub.get_message(timeout=0.1), timeout=2)
    finally:
        pubsub.close()

    assert message["data"] == run["id"]
    assert queue.redis.exists(queue.keys.cancel_flag(run["id"]))


def test_queue_depth_counts_runs_no_worker_has_taken(queue):
    for _ in range(3):
        services.create_run(mode="redis", spec=SPEC)
    assert queue.depth() == 3

    queue.redis.xreadgroup(queue.keys.group, "someone", {queue.keys.stream: ">"}, count=1)

    assert queue.depth() == 2


def test_a_running_run_that_lost_both_its_worker_and_its_entry_is_sent_again_after_a_lease(queue):
    run, _ = services.create_run(mode="redis", spec=SPEC)
    services.begin_attempt(run.pk)  # a worker started it...
    queue.redis.delete(queue.keys.stream, queue.keys.guard(str(run.pk)))  # ...then Redis lost everything

    assert sweep(queue) == 0, "first sighting: its worker may still be alive and re-take its lease"
    assert wait_for(lambda: sweep(queue), timeout=5) == 1
    assert [fields["runId"] for _, fields in entries(queue)] == [str(run.pk)]


def test_a_running_run_whose_worker_holds_its_lease_is_left_alone(queue):
    run, _ = services.create_run(mode="redis", spec=SPEC)
    services.begin_attempt(run.pk)
    queue.redis.delete(queue.keys.stream, queue.keys.guard(str(run.pk)))
    queue.acquire_lease(str(run.pk), "a-live-worker", 60_000)

    assert sweep(queue) == 0
    assert sweep(queue) == 0
    assert entries(queue) == []
