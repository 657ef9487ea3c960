"""The reference worker coalesces a task's checkpoints: at most 20 ms or 100
items per write, every item under its own key, all written before the task's
status changes, and a failed background write reported to the task."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runs import services
from runs.exceptions import RunFinished
from runs.redis.worker import context as context_module
from runs.redis.worker.context import COALESCE_MAX_ITEMS, TaskContext, TaskStopped
from tests.waiting import wait_for


@pytest.fixture
def writes(monkeypatch) -> list[list[dict[str, Any]]]:
    """Every write the context makes, as the list of items it sent."""
    made: list[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def append(run_id: str, attempt: int, items: list[dict[str, Any]]) -> None:
        with lock:
            made.append(list(items))

    monkeypatch.setattr(services, "append_attempt_checkpoints", append)
    return made


def test_checkpoints_emitted_together_go_out_in_writes_of_at_most_100(writes):
    ctx = TaskContext("run", 1, {})
    for n in range(250):
        ctx.checkpoint("progress", n)
    ctx.flush()
    ctx.close()

    assert all(len(batch) <= COALESCE_MAX_ITEMS for batch in writes)
    assert len(writes) <= 4  # not 250
    sent = [item for batch in writes for item in batch]
    assert [item["key"] for item in sent] == [f"a1-{n}" for n in range(1, 251)]
    assert [item["data"] for item in sent] == list(range(250))


def test_a_lone_checkpoint_is_written_without_waiting_for_more(writes):
    ctx = TaskContext("run", 2, {})
    ctx.checkpoint("progress", "only")

    wait_for(lambda: writes, timeout=2, what="the background write")
    assert writes == [[{"type": "progress", "data": "only", "key": "a2-1"}]]
    ctx.close()


def test_a_background_write_refused_stops_the_task_at_its_next_checkpoint(monkeypatch):
    def refuse(run_id: str, attempt: int, items: list[dict[str, Any]]) -> None:
        raise RunFinished("canceled")

    monkeypatch.setattr(services, "append_attempt_checkpoints", refuse)
    ctx = TaskContext("run", 1, {})
    ctx.checkpoint("progress", 1)

    wait_for(lambda: ctx.stopping, timeout=2, what="the refused write to stop the task")
    with pytest.raises(TaskStopped):
        ctx.checkpoint("progress", 2)
    ctx.close()


def test_the_worker_writes_every_checkpoint_before_the_run_completes(monkeypatch, writes):
    """The runner flushes after the task returns, before it records the outcome."""
    from runs.redis.worker.runner import Worker

    order: list[str] = []
    monkeypatch.setattr(context_module, "COALESCE_SECONDS", 60.0)  # only a flush writes them

    def task(input: Any, ctx: TaskContext) -> None:
        for n in range(5):
            ctx.checkpoint("progress", n)
        order.append("returned")

    monkeypatch.setattr("runs.redis.worker.runner.get_task", lambda name: task)
    ctx = TaskContext("run", 1, {"task": "t"})
    error = Worker._call_task(object.__new__(Worker), ctx)
    order.append(f"writes:{sum(len(batch) for batch in writes)}")

    assert error is None
    assert order == ["returned", "writes:5"]
