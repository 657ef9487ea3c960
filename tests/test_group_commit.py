"""Group commit over real HTTP: the appends a server process receives while a
group is being stored go to the database together, in one statement, and
each request is still answered with its own checkpoints, or its own error.

The tests make the groups deterministic by holding a run's row lock: the
first append waits on it in the database, the others gather behind it
(the server says how many wait), and they are stored together once the
lock is gone.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection, transaction

from runs import services
from runs.models import Checkpoint, Run
from tests.factories import new_run
from tests.test_metrics import value
from tests.threads import in_thread
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="group commit is PostgreSQL's (elsewhere each append is stored alone)",
    ),
]


def _post(server: Any, run_id: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/runs/{run_id}/checkpoints", json=body, timeout=30)


def _waiting_on_a_lock(server: Any) -> int:
    """The server's database sessions waiting for a row lock now."""
    with connection.cursor() as cursor:
        # Inside a transaction the activity view is read once, then cached.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            [server.db_application_name],
        )
        return cursor.fetchone()[0]


def _appends_waiting(server: Any) -> float:
    return value(httpx.get(f"{server.url}/metrics").text, "orchestrator_checkpoint_appends_waiting")


def _send_behind_a_waiting_append(
    server: Any, pool: ThreadPoolExecutor, locked_run: Any, requests: list[tuple[Any, dict[str, Any]]]
) -> tuple[Future[httpx.Response], list[Future[httpx.Response]]]:
    """An append to `locked_run` (whose row lock the caller holds) waiting in the
    database, and `requests` sent after it, all waiting for it to commit."""
    first = pool.submit(_post, server, locked_run.pk, {"type": "first"})
    wait_for(lambda: _waiting_on_a_lock(server) == 1, what="the first append to wait for the row lock")
    rest = [pool.submit(_post, server, run_id, body) for run_id, body in requests]
    wait_for(lambda: _appends_waiting(server) == len(rest), what="the other appends to wait for it")
    return first, rest


def _stored(*runs: Run) -> dict[str, dict[str, Any]]:
    """Every checkpoint of `runs` by id, with the transaction that stored it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, run_id, seq, type, data, key, xmin::text FROM runs_checkpoint WHERE run_id = ANY(%s)",
            [[run.pk for run in runs]],
        )
        return {
            str(pk): {
                "run": run_id,
                "seq": seq,
                "type": kind,
                "data": None if data is None else json.loads(data),
                "key": key,
                "xact": xact,
            }
            for pk, run_id, seq, kind, data, key, xact in cursor.fetchall()
        }


def _checkpoints(answer: httpx.Response) -> list[dict[str, Any]]:
    body = answer.json()
    return body["checkpoints"] if "checkpoints" in body else [body["checkpoint"]]


def _seqs(stored: dict[str, dict[str, Any]], run: Run) -> list[int]:
    return sorted(row["seq"] for row in stored.values() if row["run"] == run.pk)


def test_appends_arriving_together_are_stored_in_one_statement_each_answered_with_its_own(asgi_server):
    a, b = new_run(), new_run()
    finished = new_run()
    services.cancel_run(finished.pk)
    held = services.append_checkpoints(b.pk, [{"type": "k", "data": 1, "key": "held"}])[0]
    grouped = [
        (a.pk, {"type": "n", "data": 1}),
        (a.pk, {"type": "n", "data": 2}),
        (b.pk, {"type": "n", "data": 3}),
        (a.pk, {"type": "t", "data": 0, "key": "twice"}),
    ]
    left_out = [
        (a.pk, {"type": "t", "data": 0, "key": "twice"}),  # the same key as one of the group
        (b.pk, {"type": "k", "data": 1, "key": "held"}),  # a replay
        (b.pk, {"type": "k", "data": 2, "key": "held"}),  # the key held for other data
        (finished.pk, {"type": "n"}),
        (uuid.uuid4(), {"type": "n"}),
    ]

    with ThreadPoolExecutor(len(grouped) + len(left_out) + 1) as pool:
        with transaction.atomic():
            Run.objects.select_for_update().get(pk=a.pk)
            first, answers = _send_behind_a_waiting_append(asgi_server, pool, a, grouped + left_out)
            # A batch is one statement already: it is stored at once, not behind the group.
            batch = _post(
                asgi_server, b.pk, {"checkpoints": [{"type": "n", "data": 4}, {"type": "n", "data": 5}]}
            )
        first_answer = first.result()
        grouped_answers = [answer.result() for answer in answers[: len(grouped)]]
        twice, replayed, conflicting, refused, unknown = (
            answer.result() for answer in answers[len(grouped) :]
        )

    stored = _stored(a, b)
    assert first_answer.status_code == 201
    assert sorted([grouped_answers[-1].status_code, twice.status_code]) == [200, 201]
    assert [answer.status_code for answer in grouped_answers[:-1]] == [201] * 3
    assert [(cp["seq"], cp["data"]) for cp in _checkpoints(batch)] == [(2, 4), (3, 5)]
    assert _checkpoints(twice) == _checkpoints(grouped_answers[-1])
    assert (replayed.status_code, _checkpoints(replayed)[0]["id"]) == (200, str(held.pk))
    assert (conflicting.status_code, conflicting.json()["code"]) == (409, "idempotency_conflict")
    assert (refused.status_code, refused.json()["details"]["status"]) == (409, "canceled")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "run_not_found")
    # Each answer is its own row, as stored.
    answered = [cp for answer in grouped_answers for cp in _checkpoints(answer)]
    for cp in answered:
        row = stored[cp["id"]]
        assert (str(row["run"]), row["seq"], row["type"], row["data"]) == (
            cp["runId"],
            cp["seq"],
            cp["type"],
            cp["data"],
        )
    assert len({cp["id"] for cp in answered}) == 4
    # Gap-free per run.
    assert _seqs(stored, a) == [1, 2, 3, 4]
    assert _seqs(stored, b) == [1, 2, 3, 4]
    # The appends that waited went in one transaction, after the first one's.
    assert len({stored[cp["id"]]["xact"] for cp in answered}) == 1
    assert stored[_checkpoints(first_answer)[0]["id"]]["xact"] != stored[answered[0]["id"]]["xact"]


def test_a_group_the_database_refuses_whole_is_stored_request_by_request(asgi_server):
    """A key committed by another writer after the group's statement began
    makes the unique index refuse the whole statement: each request is then
    appended alone, with its own answer, and seq stays gap-free."""
    a, b = new_run(), new_run()
    b_locked, release_b = threading.Event(), threading.Event()

    def store_key_holding_b() -> None:
        with transaction.atomic():
            services.append_checkpoints(b.pk, [{"type": "k", "data": 1, "key": "k"}])
            b_locked.set()
            release_b.wait(30)

    other_writer = in_thread(store_key_holding_b)
    other_writer.start()
    b_locked.wait(30)
    requests = [
        (a.pk, {"type": "n", "data": 1}),
        (b.pk, {"type": "k", "data": 1, "key": "k"}),
        (b.pk, {"type": "n", "data": 2}),
        (a.pk, {"type": "n", "data": 3}),
    ]
    try:
        with ThreadPoolExecutor(len(requests) + 1) as pool:
            with transaction.atomic():
                Run.objects.select_for_update().get(pk=a.pk)
                first, answers = _send_behind_a_waiting_append(asgi_server, pool, a, requests)
            assert first.result().status_code == 201
            # The group's statement has begun (before the key was committed) and waits for b.
            wait_for(lambda: _waiting_on_a_lock(asgi_server) == 1, what="the group to wait for b's lock")
            release_b.set()
            other_writer.join()
            one, replay, two, three = (answer.result() for answer in answers)
    finally:
        release_b.set()
        other_writer.join()

    stored = _stored(a, b)
    assert [one.status_code, replay.status_code, two.status_code, three.status_code] == [201, 200, 201, 201]
    key_row = next(pk for pk, row in stored.items() if row["key"] == "k")
    assert _checkpoints(replay)[0]["id"] == key_row
    # Each answer is its own row, as stored (a's two in the order they came).
    for answer in (one, two, three):
        [cp] = _checkpoints(answer)
        assert (str(stored[cp["id"]]["run"]), stored[cp["id"]]["data"]) == (cp["runId"], cp["data"])
    assert sorted(_checkpoints(answer)[0]["seq"] for answer in (one, three)) == [2, 3]
    assert _checkpoints(two)[0]["seq"] == 2
    assert _seqs(stored, a) == [1, 2, 3]
    assert _seqs(stored, b) == [1, 2]
    # Each appended alone: a transaction of its own.
    answered = [_checkpoints(answer)[0]["id"] for answer in (one, two, three)]
    assert len({stored[pk]["xact"] for pk in answered}) == 3


def test_concurrent_appends_to_few_runs_in_two_processes_keep_every_answer_and_seq(tmp_path):
    """Two server processes, each storing groups that span runs (each locks
    its runs in one order, so the two cannot deadlock), many clients at once:
    every answer is its own row, and every run's seq is gap-free."""
    from tests.servers import running_server

    runs = [new_run() for _ in range(3)]
    clients, per_client = 12, 20

    with running_server(tmp_path, gunicorn_workers=2) as server:

        def client(index: int) -> list[tuple[int, list[dict[str, Any]]]]:
            answers = []
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for n in range(per_client):
                    run = runs[(index + n) % len(runs)]
                    body: dict[str, Any] = {"type": "c", "data": [index, n]}
                    if n % 2:
                        body["key"] = f"{index}-{n}"
                    response = http.post(f"/runs/{run.pk}/checkpoints", json=body)
                    answers.append((response.status_code, _checkpoints(response)))
            return answers

        with ThreadPoolExecutor(clients) as pool:
            answers = list(itertools.chain.from_iterable(pool.map(client, range(clients))))

    stored = _stored(*runs)
    assert [status for status, _ in answers] == [201] * clients * per_client
    answered = [cp for _, checkpoints in answers for cp in checkpoints]
    assert {cp["id"]: (cp["seq"], cp["data"]) for cp in answered} == {
        pk: (row["seq"], row["data"]) for pk, row in stored.items()
    }
    for run in runs:
        count = Checkpoint.objects.filter(run_id=run.pk).count()
        assert _seqs(stored, run) == list(range(1, count + 1))
        run.refresh_from_db()
        assert run.checkpoint_count == count
