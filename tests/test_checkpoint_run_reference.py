"""A checkpoint always names a run that exists: on PostgreSQL statement
triggers keep the rule the foreign key kept (migration 0011), against any
writer, including one racing a delete of the run."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from runs import services
from runs.exceptions import RunNotFound
from runs.models import Checkpoint, Run
from tests.threads import in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's"),
]

ITEMS = [{"type": "progress", "data": {"step": i}} for i in range(100)]


def new_run() -> Run:
    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    return run


def insert(run_id: uuid.UUID, seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO runs_checkpoint (run_id, seq, ts, type) VALUES (%s, %s, %s, 'x')",
            [run_id, seq, datetime(2026, 1, 1, second=seq % 60, tzinfo=UTC)],
        )


def delete_run_rows(run_id: uuid.UUID) -> None:
    """The statements a cascade deletes a run with: its checkpoints, then the run."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM runs_checkpoint WHERE run_id = %s", [run_id])
        cursor.execute("DELETE FROM runs_run WHERE id = %s", [run_id])


def test_the_foreign_key_is_replaced_by_the_triggers():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid = 'runs_checkpoint'::regclass"
        )
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
            "('runs_checkpoint'::regclass, 'runs_run'::regclass) ORDER BY tgname"
        )
        assert [name for (name,) in cursor.fetchall()] == [
            "checkpoint_run_exists_on_insert",
            "checkpoint_run_exists_on_update",
            "run_checkpoints_gone_on_delete",
            "run_checkpoints_gone_on_truncate",
            "run_checkpoints_gone_on_update",
        ]


def test_a_checkpoint_naming_no_run_is_refused():
    with pytest.raises(IntegrityError, match="names a run that does not exist"):
        insert(uuid.uuid4(), 1)
    with pytest.raises(IntegrityError):
        Checkpoint.objects.create(run_id=uuid.uuid4(), seq=1, ts=datetime.now(UTC), type="x")

    assert not Checkpoint.objects.exists()


def test_one_missing_run_refuses_the_whole_statement():
    run = new_run()
    rows = [
        Checkpoint(run_id=run.pk, seq=1, ts=datetime(2026, 1, 1, tzinfo=UTC), type="x"),
        Checkpoint(run_id=uuid.uuid4(), seq=1, ts=datetime(2026, 1, 1, tzinfo=UTC), type="x"),
    ]

    with pytest.raises(IntegrityError):
        Checkpoint.objects.bulk_create(rows)

    assert not Checkpoint.objects.exists()


def test_a_checkpoint_moved_to_no_run_is_refused():
    run = new_run()
    services.append_checkpoints(run.pk, ITEMS[:3])

    with pytest.raises(IntegrityError):
        Checkpoint.objects.filter(run_id=run.pk, seq=2).update(run_id=uuid.uuid4())

    assert Checkpoint.objects.filter(run_id=run.pk).count() == 3


def test_a_run_with_checkpoints_cannot_be_deleted_truncated_or_renamed_but_cascades():
    run, other = new_run(), new_run()
    services.append_checkpoints(run.pk, ITEMS)

    with pytest.raises(IntegrityError, match="leaves checkpoints without their run"):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM runs_run WHERE id IN (%s, %s)", [run.pk, other.pk])
    with pytest.raises(IntegrityError):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("TRUNCATE runs_run CASCADE")
    with pytest.raises(IntegrityError):
        Run.objects.filter(pk=run.pk).update(id=uuid.uuid4())
    Run.objects.filter(pk=run.pk).update(id=run.pk)  # the same id: nothing is left behind
    renamed = uuid.uuid4()
    Run.objects.filter(pk=other.pk).update(id=renamed)  # no checkpoints: nothing to keep

    assert Checkpoint.objects.filter(run_id=run.pk).count() == 100
    Run.objects.filter(pk=run.pk).delete()  # the ORM's cascade: checkpoints first
    assert not Checkpoint.objects.exists()
    assert list(Run.objects.values_list("pk", flat=True)) == [renamed]


def _hold(work, done: threading.Event, release: threading.Event, outcome: dict) -> threading.Thread:
    def body() -> None:
        try:
            with transaction.atomic():
                outcome["value"] = work()
                done.set()
                assert release.wait(30)
        except Exception as exc:  # the outcome this test looks at
            outcome["error"] = exc
            done.set()

    thread = in_thread(body)
    thread.start()
    return thread


def _run_until_blocked(work, outcome: dict) -> threading.Thread:
    def body() -> None:
        try:
            with transaction.atomic():
                outcome["value"] = work()
        except Exception as exc:  # the outcome this test looks at
            outcome["error"] = exc

    thread = in_thread(body)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "should wait for the other transaction's lock on the run"
    return thread


@pytest.mark.parametrize("writer", ["append", "insert"])
def test_a_delete_of_the_run_waits_for_a_write_in_flight_and_then_fails(writer):
    run = new_run()
    done, release = threading.Event(), threading.Event()
    written: dict = {}
    work = (
        (lambda: services.append_checkpoints(run.pk, ITEMS))
        if writer == "append"
        else (lambda: insert(run.pk, 1))
    )
    holder = _hold(work, done, release, written)
    assert done.wait(10) and "error" not in written

    deleted: dict = {}
    deleter = _run_until_blocked(lambda: delete_run_rows(run.pk), deleted)
    release.set()
    holder.join(10)
    deleter.join(10)

    assert isinstance(deleted.get("error"), IntegrityError)
    assert Run.objects.filter(pk=run.pk).exists()
    assert Checkpoint.objects.filter(run_id=run.pk).count() == (100 if writer == "append" else 1)


@pytest.mark.parametrize("writer", ["append", "insert"])
def test_a_write_waits_for_a_delete_of_the_run_in_flight_and_then_fails(writer):
    run = new_run()
    services.append_checkpoints(run.pk, ITEMS[:1])
    done, release = threading.Event(), threading.Event()
    deleted: dict = {}
    holder = _hold(lambda: delete_run_rows(run.pk), done, release, deleted)
    assert done.wait(10) and "error" not in deleted

    written: dict = {}
    work = (
        (lambda: services.append_checkpoints(run.pk, ITEMS))
        if writer == "append"
        else (lambda: insert(run.pk, 9))
    )
    writer_thread = _run_until_blocked(work, written)
    release.set()
    holder.join(10)
    writer_thread.join(10)

    assert isinstance(written.get("error"), RunNotFound if writer == "append" else IntegrityError)
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not Checkpoint.objects.filter(run_id=run.pk).exists()
