"""Priority: among runs handed over and waiting for a worker, higher first,
from one Redis stream per priority; every Nth run taken is the one that has
waited longest, so a low priority is never starved for ever."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from runs import services
from runs.models import Run
from runs.redis import queue as run_queue
from tests.conftest import assert_wire
from tests.redis_workers import WorkerProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {"task": "sleep", "input": {"seconds": 0}}


def create(priority: int | None = None, spec: dict | None = None) -> Run:
    run, _ = services.create_run(mode="redis", spec=spec or SPEC, priority=priority)
    return run


def queued(queue: run_queue.RunQueue, level: int) -> list[str]:
    return [fields["runId"] for _, fields in queue.redis.xrange(queue.keys.stream_for(level))]


def take_order(queue: run_queue.RunQueue, count: int, every: int) -> list[str]:
    """The runs a consumer takes one at a time, in order."""
    order = []
    for _ in range(count):
        entries, _ = queue.take("reader", 1, oldest_every=every)
        order.extend(entry.run_id for entry in entries)
    return order


def test_the_api_takes_and_shows_priority_and_names_it_when_bad(api, queue) -> None:
    urgent = api.post("/runs?mode=redis", {"spec": SPEC, "priority": 9}).json()["run"]
    plain = api.post("/runs?mode=redis", {"spec": SPEC}).json()["run"]

    assert_wire("run.schema.json#/$defs/run", urgent)
    assert (urgent["priority"], plain["priority"]) == (9, 5)
    assert api.get(f"/runs/{urgent['id']}").json()["run"]["priority"] == 9
    for bad in (-1, 10, "9", True, 1.5, None):
        response = api.post("/runs?mode=redis", {"spec": SPEC, "priority": bad})
        assert response.status_code == 422, bad
        assert list(response.json()["details"]["fields"]) == ["priority"], bad
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert "priority" in schemas["CreateRunRequest"]["properties"]
    assert "priority" in schemas["Run"]["properties"]
    plan = api.post("/runs?mode=plan&target=redis", {"spec": SPEC, "priority": 2}).json()["plan"]
    assert plan["run"]["priority"] == 2
    assert plan["dispatch"]["stream"] == queue.keys.stream_for(2)
    assert any("of its priority, 2" in step for step in plan["steps"])


def test_each_priority_has_its_stream_and_the_default_keeps_the_plain_one(queue) -> None:
    urgent, plain, low = create(9), create(), create(0)

    assert queued(queue, 9) == [str(urgent.pk)]
    assert queue.keys.stream_for(5) == queue.keys.stream
    assert queued(queue, 5) == [str(plain.pk)]
    assert queued(queue, 0) == [str(low.pk)]
    assert queue.stats().depth_by_priority == {level: int(level in (0, 5, 9)) for level in range(10)}


def test_takes_go_highest_first_and_oldest_first_within_a_priority(queue) -> None:
    runs = [create(level) for level in (1, 7, 5, 7, 9, 1)]

    order = take_order(queue, len(runs), every=1000)

    by_id = {str(run.pk): run for run in runs}
    assert [by_id[run_id].priority for run_id in order] == [9, 7, 7, 5, 1, 1]
    assert order[1:3] == [str(runs[1].pk), str(runs[3].pk)]
    assert take_order(queue, 1, every=1000) == []


def test_every_tenth_take_is_the_longest_waiting_so_a_low_priority_is_not_starved(queue) -> None:
    low = create(0)
    urgent = [create(9) for _ in range(25)]

    order = take_order(queue, 26, every=10)

    # Urgent work fills the queue the whole time; without the rule the low run would be taken last.
    assert order.index(str(low.pk)) == 9
    assert order[:9] == [str(run.pk) for run in urgent[:9]]
    assert sorted(order) == sorted([str(low.pk), *(str(run.pk) for run in urgent)])


def test_the_longest_waiting_rule_counts_takes_across_the_fleet(queue) -> None:
    low = create(0)
    [create(9) for _ in range(5)]

    for consumer in ("a", "b", "a", "b"):
        queue.take(consumer, 1, oldest_every=5)
    entries, _ = queue.take("c", 1, oldest_every=5)

    assert [entry.run_id for entry in entries] == [str(low.pk)]


def test_a_lost_workers_entry_of_a_priority_stream_is_dropped_and_sent_again(queue) -> None:
    run = create(8)
    [entry], _ = queue.take("gone-worker", 1, oldest_every=10)
    assert entry.stream == queue.keys.stream_for(8)
    assert queue.holders([str(run.pk)]) == {str(run.pk): "consumer:gone-worker"}

    assert queue.drop_abandoned(str(run.pk), "gone-worker")
    assert queue.holders([str(run.pk)]) == {str(run.pk): None}
    assert queue.enqueue(str(run.pk), run_queue.entry_fields(run))

    assert queued(queue, 8) == [str(run.pk)] and queue.holders([str(run.pk)]) == {str(run.pk): "queued"}


def test_real_workers_start_higher_priorities_first(queue, tmp_path, settings) -> None:
    spec = {"task": "probe", "input": {"seconds": 0}}
    # Queued before any worker reads, each priority twice, lowest created first.
    runs = [create(level, spec) for level in (0, 3, 5, 8, 9) for _ in range(2)]
    worker = WorkerProcess(
        tmp_path, settings.REDIS_KEY_PREFIX, concurrency=1, REDIS_QUEUE_OLDEST_EVERY="1000"
    )
    try:
        worker.start()
        ids = [run.pk for run in runs]
        wait_for(
            lambda: Run.objects.filter(pk__in=ids, status="completed").count() == len(runs),
            timeout=60,
            what="every run to complete",
        )
    finally:
        worker.terminate()
        worker.stop()

    started = Run.objects.filter(pk__in=[run.pk for run in runs]).order_by("started_at")
    assert [run.priority for run in started] == [9, 9, 8, 8, 5, 5, 3, 3, 0, 0]


def test_runs_show_and_runs_list_print_the_priority(queue, capsys) -> None:
    run = create(7)

    call_command("runs_show", str(run.pk))
    assert "priority:     7" in capsys.readouterr().out
    call_command("runs_list")
    header, *rows = capsys.readouterr().out.splitlines()
    assert "PRI" in header
    row = next(row for row in rows if row.startswith(str(run.pk)))
    assert row.split()[3] == "7"


def test_a_schedules_template_carries_the_priority_to_its_runs(api, queue) -> None:
    body = {"name": "urgent-nightly", "cron": "30 2 * * *", "mode": "redis", "spec": SPEC, "priority": 8}
    schedule = api.post("/schedules", body).json()["schedule"]
    assert_wire("schedule.schema.json#/$defs/schedule", schedule)
    assert schedule["priority"] == 8

    run_id = api.post(f"/schedules/{schedule['id']}/trigger").json()["runId"]

    assert Run.objects.get(pk=run_id).priority == 8
    bad = api.post("/schedules", {**body, "name": "bad", "priority": 12})
    assert bad.status_code == 422 and "priority" in bad.json()["details"]["fields"]


def test_the_priority_class_setting_reads_pairs_and_names_a_bad_one(monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from orchestrator.env import env_int_map

    monkeypatch.setenv("K8S_PRIORITY_CLASSES", "9=urgent, 8=urgent,0=batch")
    assert env_int_map("K8S_PRIORITY_CLASSES", lowest=0, highest=9) == {9: "urgent", 8: "urgent", 0: "batch"}
    for bad in ("10=x", "nine=x", "9", "9="):
        monkeypatch.setenv("K8S_PRIORITY_CLASSES", bad)
        with pytest.raises(ImproperlyConfigured, match="K8S_PRIORITY_CLASSES"):
            env_int_map("K8S_PRIORITY_CLASSES", lowest=0, highest=9)


def test_the_admin_filters_runs_by_priority_and_shows_it_on_the_run(admin_client, queue) -> None:
    urgent, plain = create(9), create()

    page = admin_client.get("/admin/runs/run/?priority__exact=9").content.decode()
    listed = set(re.findall(r'href="/admin/runs/run/([0-9a-f-]{36})/change/', page))

    assert listed == {str(urgent.pk)}, f"not {plain.pk}"
    detail = admin_client.get(f"/admin/runs/run/{urgent.pk}/change/").content.decode()
    assert re.search(r"Priority:?</label>\s*<div class=\"readonly\">9</div>", detail)


def test_the_dashboards_queue_panel_shows_the_waiting_runs_per_priority(admin_client, queue) -> None:
    create(9), create(9), create(0)

    page = admin_client.get("/admin/runs/dashboard/").content.decode()

    assert re.search(r'data-queue="by-priority">.*9: 2.* · .*0: 1.*</td>', page)


def test_the_api_serves_the_queue_depth_per_priority(queue, client) -> None:
    from tests.test_metrics import scrape, value

    create(9), create(9), create(0)
    queue.take("pretend-worker", 1, oldest_every=10)  # one of the 9s taken: delivered, not waiting

    text = scrape(client)

    assert value(text, "orchestrator_queue_depth_by_priority", priority="9") == 1
    assert value(text, "orchestrator_queue_depth_by_priority", priority="0") == 1
    assert value(text, "orchestrator_queue_depth_by_priority", priority="5") == 0
    assert value(text, "orchestrator_queue_depth") == 2


def test_a_batch_lands_each_run_in_its_priority_stream_once(queue) -> None:
    # Runs not yet handed over (a create would have queued them already).
    runs = [
        Run(id=uuid.uuid4(), mode="redis", spec=SPEC, priority=level, created_at=timezone.now())
        for level in (9, 5, 0)
        for _ in range(2)
    ]
    batch = [(str(run.id), run_queue.entry_fields(run)) for run in runs]
    queue.enqueue(*batch[0])  # already queued: not again

    added = queue.enqueue_many(batch + batch[-1:])  # the last run twice in one batch

    assert added == len(runs) - 1
    assert queued(queue, 9) == [str(run.id) for run in runs[:2]]
    assert queued(queue, 5) == [str(run.id) for run in runs[2:4]]
    assert queued(queue, 0) == [str(run.id) for run in runs[4:]]
    assert queue.enqueue_many(batch) == 0


def test_a_batch_larger_than_one_script_call_is_queued_whole(queue) -> None:
    items = [(str(uuid.uuid4()), {"v": "x", "runId": str(n), "priority": "3"}) for n in range(1201)]

    assert queue.enqueue_many(items) == 1201
    assert queue.redis.xlen(queue.keys.stream_for(3)) == 1201
    assert queue.enqueue_many(items) == 0
