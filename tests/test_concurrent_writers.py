"""Many writers append to one run at once: seq stays gap-free and ts strictly
increasing, and a reader never sees seq N+1 before N."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from runs import checkpoint_writer, selectors, services
from runs.models import Checkpoint
from tests.threads import in_thread

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 24
PER_WRITER = 15


@pytest.fixture(params=["single_statement", "row_lock"])
def writer(request, monkeypatch):
    """Both ways of appending: PostgreSQL's one statement and the portable ORM path."""
    if request.param == "row_lock":
        monkeypatch.setattr(checkpoint_writer, "_store", checkpoint_writer._append_portable)
    return request.param


def test_concurrent_writers_get_gap_free_seq_and_ordered_unique_ts(writer):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    start = threading.Barrier(WRITERS + 2)  # writers, the reader and this thread
    errors: list[BaseException] = []
    reader_violations: list[str] = []
    done = threading.Event()

    def write(writer: int) -> None:
        start.wait()
        try:
            for i in range(PER_WRITER):
                items = [{"type": "w", "data": [writer, i]}]
                if i % 5 == 0:
                    items.append({"type": "w", "data": [writer, i, "pair"]})
                services.append_checkpoints(run.id, items)
        except BaseException as exc:  # collected so the main thread fails loudly
            errors.append(exc)

    def read() -> None:
        start.wait()
        while not done.is_set():
            seqs = list(Checkpoint.objects.filter(run_id=run.id).order_by("ts").values_list("seq", flat=True))
            if seqs != list(range(1, len(seqs) + 1)):
                reader_violations.append(f"reader saw {seqs[:10]}...")
                return

    threads = [in_thread(write, n) for n in range(WRITERS)]
    reader = in_thread(read)
    for thread in [*threads, reader]:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()

    assert not errors, errors
    assert not reader_violations
    expected = WRITERS * (PER_WRITER + 3)
    checkpoints = list(Checkpoint.objects.filter(run_id=run.id).order_by("seq"))
    assert [cp.seq for cp in checkpoints] == list(range(1, expected + 1))
    stamps = [cp.ts for cp in checkpoints]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    # Each writer's own appends keep their order.
    for writer in range(WRITERS):
        mine = [cp.data[1] for cp in checkpoints if cp.data[0] == writer and len(cp.data) == 2]
        assert mine == list(range(PER_WRITER))
    run.refresh_from_db()
    assert run.checkpoint_count == expected


def test_paging_with_after_under_concurrent_writes_misses_nothing(writer):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    start = threading.Barrier(9)

    def write() -> None:
        start.wait()
        for _ in range(20):
            services.append_checkpoints(run.id, [{"type": "w"}])

    threads = [in_thread(write) for _ in range(8)]
    for thread in threads:
        thread.start()
    start.wait()
    seen: list[int] = []
    after = None
    deadline = time.monotonic() + 30
    while len(seen) < 160 and time.monotonic() < deadline:
        page, _ = selectors.list_checkpoints(run, after=after, limit=7)
        if page:
            seen += [cp.seq for cp in page]
            after = page[-1].ts
    for thread in threads:
        thread.join()

    assert seen == list(range(1, 161))


def test_concurrent_creates_with_one_idempotency_key_make_one_run():
    from runs.models import Run

    start = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def create() -> None:
        start.wait()
        try:
            run, created = services.create_run(
                mode="redis", spec={"task": "sleep"}, owner="ci", idempotency_key="nightly-1"
            )
            results.append((str(run.id), created))
        except BaseException as exc:  # collected so the main thread fails loudly
            errors.append(exc)

    threads = [in_thread(create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Run.objects.filter(idempotency_key="nightly-1").count() == 1


def test_writers_racing_with_the_same_keys_store_each_key_once(writer):
    run, _ = services.create_run(mode="redis", spec=None)
    batch = [{"type": "t", "data": index, "key": f"k{index}"} for index in range(PER_WRITER)]
    answers: list[list[int]] = []
    start = threading.Barrier(WRITERS // 3)

    def write() -> None:
        start.wait()
        rows = services.append_checkpoints(run.id, batch)
        answers.append([row.seq for row in rows])

    threads = [in_thread(write) for _ in range(WRITERS // 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = list(Checkpoint.objects.filter(run_id=run.id).order_by("seq").values_list("key", "data"))
    assert stored == [(f"k{index}", index) for index in range(PER_WRITER)]
    assert answers == [list(range(1, PER_WRITER + 1))] * (WRITERS // 3)
