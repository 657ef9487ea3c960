"""How one subscriber takes frames from its run's shared reads: no repeats
when reads overlap, `end` only after a complete read of a final run, and a
hopelessly slow client is let go (it resumes from the table)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from runs.stream.hub import Subscriber
from runs.stream.reads import TailRead

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def ts(n: int) -> datetime:
    return T0 + timedelta(microseconds=n)


def read(
    seqs: range,
    *,
    status: str = "running",
    final: bool = False,
    complete: bool = True,
    was_running: bool = False,
) -> TailRead:
    return TailRead(
        status=status,
        final=final,
        complete=complete,
        status_frame=f"status:{status}".encode(),
        end_frame=b"end",
        checkpoints=[(ts(n), f"cp:{n}".encode()) for n in seqs],
        was_running_frame=b"status:running" if was_running else None,
    )


def subscriber(pos: int | None = None, status: str = "running") -> Subscriber:
    async def make() -> Subscriber:
        return Subscriber(uuid.uuid4(), None if pos is None else ts(pos), status)

    return asyncio.run(make())


def frames(sub: Subscriber) -> list[bytes]:
    out = [frame for frame, _ in sub.frames]
    sub.frames.clear()
    return out


def test_overlapping_reads_never_repeat_a_checkpoint():
    sub = subscriber(pos=2)
    sub.deliver(read(range(1, 5)), max_buffered=100)
    sub.deliver(read(range(3, 7)), max_buffered=100)
    assert frames(sub) == [b"cp:3", b"cp:4", b"cp:5", b"cp:6"]
    assert sub.pos == ts(6)


def test_a_status_change_comes_before_the_checkpoints_of_the_same_read():
    sub = subscriber(status="pending")
    sub.deliver(read(range(1, 3), status="running"), max_buffered=100)
    assert frames(sub) == [b"status:running", b"cp:1", b"cp:2"]


def test_a_running_status_missed_between_two_reads_is_still_sent():
    sub = subscriber(status="pending")
    sub.deliver(read(range(1, 3), status="completed", final=True, was_running=True), max_buffered=100)
    assert frames(sub) == [b"status:running", b"cp:1", b"cp:2", b"status:completed", b"end"]


def test_a_run_canceled_before_it_ran_goes_straight_to_canceled():
    sub = subscriber(status="pending")
    sub.deliver(read(range(0), status="canceled", final=True), max_buffered=100)
    assert frames(sub) == [b"status:canceled", b"end"]


def test_a_subscriber_that_saw_running_is_not_told_again():
    sub = subscriber(status="running")
    sub.deliver(read(range(0), status="failed", final=True, was_running=True), max_buffered=100)
    assert frames(sub) == [b"status:failed", b"end"]


def test_end_waits_for_a_complete_read_of_a_final_run():
    sub = subscriber()
    sub.deliver(read(range(1, 3), status="completed", final=True, complete=False), max_buffered=100)
    assert frames(sub) == [b"cp:1", b"cp:2"]
    assert not sub.done

    sub.deliver(read(range(3, 4), status="completed", final=True), max_buffered=100)
    assert frames(sub) == [b"cp:3", b"status:completed", b"end"]
    assert sub.done


def test_a_client_too_far_behind_is_closed_without_end_so_it_resumes():
    sub = subscriber()
    sub.deliver(read(range(1, 50)), max_buffered=10)
    assert sub.done
    assert frames(sub) == []
