"""Appending checkpoints through a running ASGI server, where the append is
an async view that leaves the event loop only for the database."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import assert_wire
from tests.factories import new_run
from tests.servers import terminate_connections

pytestmark = pytest.mark.django_db(transaction=True)


def test_single_and_batched_appends_answer_as_the_schema_says(asgi_server):
    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        run_id = str(new_run().pk)

        single = http.post(f"/runs/{run_id}/checkpoints", json={"type": "progress", "data": {"pct": 5}})
        batch = http.post(
            f"/runs/{run_id}/checkpoints",
            json={"checkpoints": [{"type": "line", "data": n} for n in range(3)]},
        )
        listed = http.get(f"/runs/{run_id}/checkpoints").json()["checkpoints"]

    assert single.status_code == 201
    assert single.headers["Content-Type"] == "application/json"
    assert_wire("checkpoint.schema.json#/$defs/appendResponse", single.json())
    assert single.json()["checkpoint"]["seq"] == 1
    assert batch.status_code == 201
    assert_wire("checkpoint.schema.json#/$defs/appendBatchResponse", batch.json())
    assert [cp["seq"] for cp in batch.json()["checkpoints"]] == [2, 3, 4]
    assert [cp["data"] for cp in listed] == [{"pct": 5}, 0, 1, 2]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "malformed_json"),
        (b"type=log", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b'{"data": 1}', {"Content-Type": "application/json"}, 422, "validation_error"),
        (b'{"checkpoints": []}', {"Content-Type": "application/json"}, 422, "validation_error"),
        (b"[]", {"Content-Type": "application/json"}, 422, "validation_error"),
    ],
)
def test_bad_appends_get_the_one_error_shape(asgi_server, body, headers, status, code):
    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        run_id = str(new_run().pk)
        response = http.post(f"/runs/{run_id}/checkpoints", content=body, headers=headers)

    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    assert error["requestId"] == response.headers["X-Request-ID"]


def test_a_checkpoint_without_a_type_names_the_field(asgi_server):
    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        run_id = str(new_run().pk)
        response = http.post(f"/runs/{run_id}/checkpoints", json={"data": 1})

    assert response.status_code == 422
    assert list(response.json()["details"]["fields"]) == ["type"]


def test_unknown_and_finished_runs_refuse_appends(asgi_server):
    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        unknown = http.post(
            "/runs/00000000-0000-4000-8000-000000000000/checkpoints", json={"type": "log", "data": None}
        )
        run_id = str(new_run().pk)
        assert http.delete(f"/runs/{run_id}").status_code == 200
        finished = http.post(f"/runs/{run_id}/checkpoints", json={"type": "log"})

    assert (unknown.status_code, unknown.json()["code"]) == (404, "run_not_found")
    assert finished.status_code == 409
    assert finished.json()["details"]["status"] == "canceled"


def test_a_batch_too_big_to_parse_on_the_event_loop_is_appended_whole(asgi_server):
    from runs.api.append import INLINE_BODY_BYTES

    batch = [{"type": "line", "data": {"text": "x" * 400, "n": n}} for n in range(400)]
    assert len(json.dumps({"checkpoints": batch})) > INLINE_BODY_BYTES
    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        run_id = str(new_run().pk)
        response = http.post(f"/runs/{run_id}/checkpoints", json={"checkpoints": batch})

    assert response.status_code == 201
    assert [cp["data"]["n"] for cp in response.json()["checkpoints"]] == list(range(400))


def test_a_pool_smaller_than_the_append_threads_serves_appends_and_reads_together(tmp_path):
    """The append threads give their connection back after every call; were
    one to keep it, two connections would be gone to two idle threads and the
    reads would wait for the pool until they failed."""
    from tests.servers import running_server

    with (
        running_server(tmp_path, DB_POOL_MIN_SIZE="0", DB_POOL_MAX_SIZE="2", DB_POOL_TIMEOUT="3") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        run_id = str(new_run().pk)

        def append(n: int) -> int:
            return http.post(f"/runs/{run_id}/checkpoints", json={"type": "n", "data": n}).status_code

        def read(_: int) -> int:
            return http.get(f"/runs/{run_id}").status_code

        with ThreadPoolExecutor(8) as pool:
            appended = list(pool.map(append, range(80)))
            read_after = list(pool.map(read, range(16)))
        count = http.get(f"/runs/{run_id}").json()["run"]["checkpointCount"]

    assert appended == [201] * 80
    assert read_after == [200] * 16
    assert count == 80


def test_a_database_restart_costs_at_most_one_503_on_the_append_path(asgi_server):

    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        run_id = str(new_run().pk)
        for n in range(5):
            assert http.post(f"/runs/{run_id}/checkpoints", json={"type": "n", "data": n}).status_code == 201
        assert terminate_connections(asgi_server.db_application_name) >= 1

        statuses = [
            http.post(f"/runs/{run_id}/checkpoints", json={"type": "n", "data": n}).status_code
            for n in range(5)
        ]
        first = statuses[0]

    assert first in (201, 503)  # 503 `database_unavailable`, never a 500
    assert statuses[1:] == [201] * 4
