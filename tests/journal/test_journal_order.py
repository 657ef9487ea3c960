"""The run journal under many concurrent writers: ids have no gaps and become
visible in increasing order, so a reader never sees N+1 before N."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest
from django.db import transaction

from journal import selectors
from journal import services as journal
from journal.models import Entry
from runs import services, states
from tests.threads import in_thread

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 24
RUNS_PER_WRITER = 6


@pytest.fixture(params=["single_statement", "orm"])
def recorder(request, monkeypatch):
    """Both ways of writing an entry: PostgreSQL's one statement and the portable ORM path."""
    if request.param == "orm":
        monkeypatch.setattr(journal, "_record_postgresql", journal._record_portable)
    return request.param


def test_a_reader_never_sees_an_entry_before_the_ones_below_it(recorder):
    start = threading.Barrier(WRITERS + 2)  # writers, the reader and this thread
    errors: list[BaseException] = []
    violations: list[str] = []
    seen: list[int] = []
    done = threading.Event()
    first = selectors.newest_id()

    def write(writer: int) -> None:
        start.wait()
        try:
            for n in range(RUNS_PER_WRITER):
                run, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner=f"w{writer}")
                with transaction.atomic():
                    services.set_run_status(run.id, states.RUNNING)
                    # Commits that come late after the entry was written (a slow
                    # disk, a busy host): ids taken from a sequence would now
                    # commit out of order.
                    time.sleep(random.random() / 50)
                if n % 3 == 0:
                    services.cancel_run(run.id)
                else:
                    services.set_run_status(run.id, states.COMPLETED)
        except BaseException as exc:  # collected so the main thread fails loudly
            errors.append(exc)

    def read() -> None:
        start.wait()
        last = first
        while True:
            finished = done.is_set()  # read once more after the writers are done
            ids = [entry.id for entry in selectors.entries_after(last, limit=50)]
            if ids and ids != list(range(last + 1, last + 1 + len(ids))):
                violations.append(f"after {last} the reader saw {ids[:10]}")
                return
            seen.extend(ids)
            last = ids[-1] if ids else last
            if finished and not ids:
                return

    writers = [in_thread(write, n) for n in range(WRITERS)]
    reader = in_thread(read)
    for thread in [*writers, reader]:
        thread.start()
    start.wait()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()

    assert not errors, errors
    assert not violations
    total = WRITERS * RUNS_PER_WRITER * 3
    assert seen == list(range(first + 1, first + 1 + total))
    # Each run's entries in the order its changes happened.
    by_run: dict[str, list[str]] = defaultdict(list)
    for entry in Entry.objects.order_by("id"):
        by_run[str(entry.run_id)].append(entry.type)
    assert len(by_run) == WRITERS * RUNS_PER_WRITER
    assert {tuple(types) for types in by_run.values()} == {
        (journal.CREATED, journal.RUNNING, journal.CANCELED),
        (journal.CREATED, journal.RUNNING, journal.COMPLETED),
    }


def test_each_change_is_one_entry_with_the_run_as_it_was(recorder):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner="ml", metadata={"team": "a"})
    services.set_run_status(run.id, states.RUNNING)
    services.fail_run(run.id, "task_error", "boom")

    entries = selectors.entries_of_run(run.id)
    assert [e.type for e in entries] == [journal.CREATED, journal.RUNNING, journal.FAILED]
    assert [e.status for e in entries] == ["pending", "running", "failed"]
    assert [e.run["status"] for e in entries] == ["pending", "running", "failed"]
    assert entries[0].run["startedAt"] is None
    assert entries[2].run["error"] == {"code": "task_error", "message": "boom"}
    assert {(e.owner, e.mode, str(e.run_id)) for e in entries} == {("ml", "redis", str(run.id))}
    run.refresh_from_db()
    assert entries[0].at == run.created_at
    assert entries[2].at == run.finished_at


def test_a_change_that_rolls_back_leaves_no_entry_and_no_gap(recorder):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    services.cancel_run(run.id)
    before = selectors.newest_id()
    with pytest.raises(services.InvalidTransition):
        services.set_run_status(run.id, states.RUNNING)  # final: refused before any entry
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.create_run(mode="redis", spec={"task": "sleep"})
            raise RuntimeError("the caller's transaction fails after the change")
    other, _ = services.create_run(mode="redis", spec={"task": "sleep"})

    assert [e.id for e in selectors.entries_after(before, limit=10)] == [before + 1]
    assert selectors.entries_after(before, limit=10)[0].run_id == other.id


def test_filters_select_in_the_database_as_in_memory():
    a, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner="a")
    b, _ = services.create_run(mode="redis", spec={"task": "sleep"}, owner="b")
    services.cancel_run(b.id)
    services.set_run_status(a.id, states.RUNNING)
    services.set_run_status(a.id, states.COMPLETED)
    cases = [
        selectors.EntryFilter(owner="a"),
        selectors.EntryFilter(owner="nobody"),
        selectors.EntryFilter(mode="k8s"),
        selectors.EntryFilter(owner="b", types=frozenset({journal.CANCELED})),
        selectors.EntryFilter(types=frozenset({journal.COMPLETED, journal.CREATED})),
        selectors.EntryFilter(run_id=a.id),
    ]
    everything = selectors.entries_after(0, limit=100)
    assert len(everything) == 5
    for filters in cases:
        assert selectors.entries_after(0, limit=100, filters=filters) == [
            e for e in everything if filters.matches(e)
        ], filters
