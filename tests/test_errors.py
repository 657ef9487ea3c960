"""Every kind of bad input gets one clear JSON error with the right status, never a 500."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from runs import services
from runs.exceptions import SchemaViolation
from tests.conftest import assert_wire
from tests.servers import terminate_connections

pytestmark = pytest.mark.django_db

UNKNOWN = "/runs/6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert_wire("run.schema.json#/$defs/errorResponse", body)
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["requestId"] == response["X-Request-ID"]
    return body


def test_malformed_json_is_400(api):
    assert_error(api.post("/runs?mode=redis", '{"spec": '), 400, "malformed_json")


def test_nan_is_malformed_and_deep_nesting_refused_not_500(api, make_run):
    run = make_run()
    url = f"/runs/{run['id']}/checkpoints"

    assert_error(api.post(url, '{"type": "x", "data": NaN}'), 400, "malformed_json")
    deep = '{"type": "x", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    too_deep = assert_error(api.post(url, deep), 422, "validation_error")
    nested = {"type": "x", "data": json.loads("[" * 80 + "]" * 80)}
    assert_error(api.post(url, nested), 422, "validation_error")

    assert too_deep["details"]["fields"] == {"(body)": ["nested deeper than 64 levels"]}


def test_a_nul_character_is_refused_with_the_field_named(api, make_run):
    run = make_run()

    body = assert_error(
        api.post(f"/runs/{run['id']}/checkpoints", {"type": "x", "data": {"s": "a\u0000b"}}),
        422,
        "validation_error",
    )

    assert "data.s" in body["details"]["fields"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("checkpoints", b'{"type": "x", "data": {"s": "\\ud800"}}', "data.s"),
        ("checkpoints", b'{"type": "x", "data": {"\\udfff": 1}}', "data"),
        ("checkpoints", b'{"checkpoints": [{"type": "\\ud83d"}]}', "checkpoints[0].type"),
        ("run", b'{"metadata": {"k": "a\\udc00b"}}', "metadata.k"),
    ],
)
def test_an_unpaired_surrogate_is_refused_with_the_field_named(api, make_run, path, body, field):
    """JSON may escape half of a surrogate pair; PostgreSQL cannot store it."""
    url = f"/runs/{make_run()['id']}/checkpoints" if path == "checkpoints" else "/runs?mode=redis"

    answer = assert_error(api.post(url, body), 422, "validation_error")

    [(named, [message])] = answer["details"]["fields"].items()
    assert named == field
    assert message.endswith("must not contain unpaired surrogates")


def test_a_body_that_is_not_json_is_415(api):
    assert_error(
        api.post("/runs?mode=redis", "spec=1", content_type="text/plain"), 415, "unsupported_media_type"
    )
    assert_error(
        api.post("/runs?mode=redis", "a=1", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )


@override_settings(MAX_BODY_BYTES=2048, DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_a_body_over_the_limit_is_413(api, make_run):
    run = make_run()

    body = assert_error(
        api.post(f"/runs/{run['id']}/checkpoints", {"type": "x", "data": "y" * 5000}), 413, "body_too_large"
    )

    assert body["details"]["maxBytes"] == 2048


@override_settings(MAX_CHECKPOINT_DATA_BYTES=100)
def test_checkpoint_data_over_its_limit_is_422_naming_the_item(api, make_run):
    run = make_run()

    body = assert_error(
        api.post(
            f"/runs/{run['id']}/checkpoints",
            {"checkpoints": [{"type": "a"}, {"type": "b", "data": "z" * 200}]},
        ),
        422,
        "validation_error",
    )

    assert list(body["details"]["fields"]) == ["checkpoints[1].data"]


def test_a_batch_over_500_is_422(api, make_run):
    run = make_run()

    body = assert_error(
        api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": [{"type": "t"}] * 501}),
        422,
        "validation_error",
    )

    assert "checkpoints" in json.dumps(body["details"])


@override_settings(MAX_CHECKPOINT_BATCH=3)
def test_a_batch_over_the_configured_cap_is_422_from_any_writer(api, make_run, queue):
    """The cap is the service's: a worker appending without HTTP meets it too."""
    run = make_run()
    four = [{"type": "t"}] * 4

    body = assert_error(
        api.post(f"/runs/{run['id']}/checkpoints", {"checkpoints": four}), 422, "validation_error"
    )
    services.begin_attempt(run["id"])
    with pytest.raises(SchemaViolation) as refused:
        services.append_attempt_checkpoints(run["id"], 1, four)

    assert body["details"]["fields"] == {"checkpoints": ["at most 3 per batch"]}
    assert refused.value.details["fields"] == {"checkpoints": ["at most 3 per batch"]}
    assert api.get(f"/runs/{run['id']}/checkpoints").json()["checkpoints"] == []


def test_schema_violations_name_every_bad_field(api):
    body = assert_error(
        api.post(
            "/runs?mode=redis",
            {"spec": {"task": 5, "timeoutSeconds": -1, "maxAttempts": 0, "extra": 1}, "metadata": []},
        ),
        422,
        "validation_error",
    )

    fields = body["details"]["fields"]
    for name in ("spec.task", "spec.timeoutSeconds", "spec.maxAttempts", "spec.extra", "metadata"):
        assert name in fields, fields


def test_a_checkpoint_without_a_type_names_type(api, make_run):
    run = make_run()

    body = assert_error(api.post(f"/runs/{run['id']}/checkpoints", {"data": 1}), 422, "validation_error")

    assert "type" in json.dumps(body["details"]["fields"])


def test_a_json_array_body_is_422(api):
    assert_error(api.post("/runs?mode=redis", [1, 2]), 422, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        "mode=bogus",
        "limit=0",
        "limit=201",
        "limit=ten",
        "status=done",
        "createdAfter=yesterday",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(api, query):
    body = assert_error(api.get(f"/runs?{query}"), 400, "bad_parameter")

    assert body["details"]["parameter"] == query.split("=")[0]


def test_bad_create_parameters_are_400(api):
    assert_error(api.post("/runs?mode=local", {}), 400, "bad_parameter")
    assert_error(api.post("/runs?mode=plan&target=mars", {}), 400, "bad_parameter")
    assert_error(api.post("/runs?mode=redis", {}, **{"Idempotency-Key": "x" * 201}), 400, "bad_parameter")
    assert_error(api.post("/runs?mode=redis", {}, **{"X-Actor-ID": "o" * 201}), 400, "bad_parameter")


def test_bad_checkpoint_list_parameters_are_400(api, make_run):
    run = make_run()

    assert_error(api.get(f"/runs/{run['id']}/checkpoints?after=nope"), 400, "bad_parameter")
    assert_error(api.get(f"/runs/{run['id']}/checkpoints?limit=5000"), 400, "bad_parameter")


def test_unknown_runs_and_paths_are_404_json(api):
    assert_error(api.get(UNKNOWN), 404, "run_not_found")
    assert_error(api.patch(UNKNOWN, {"status": "running"}), 404, "run_not_found")
    assert_error(api.delete(UNKNOWN), 404, "run_not_found")
    assert_error(api.get("/nothing/here"), 404, "not_found")


def test_a_method_the_route_does_not_have_is_405(api):
    assert_error(
        api.client.put("/runs", data="{}", content_type="application/json"), 405, "method_not_allowed"
    )


def test_request_ids_are_echoed_when_sane_and_minted_otherwise(api):
    echoed = api.get("/runs", **{"X-Request-ID": "trace-123"})
    minted = api.get("/runs", **{"X-Request-ID": "bad id with spaces <script>"})

    assert echoed["X-Request-ID"] == "trace-123"
    assert minted["X-Request-ID"] != "bad id with spaces <script>"
    assert len(minted["X-Request-ID"]) == 32
    assert Client().get("/health")["X-Request-ID"]


def test_every_log_line_of_a_request_carries_its_id(api, caplog):
    with caplog.at_level("INFO", logger="runs.services"):
        api.post("/runs?mode=redis", {}, **{"X-Request-ID": "req-42"})

    records = [r for r in caplog.records if r.name == "runs.services"]
    assert records
    assert all(getattr(r, "request_id", None) == "req-42" for r in records) or all(
        "req-42" in str(getattr(r, "request_id", "")) for r in records
    )


@pytest.mark.django_db(transaction=True)
def test_a_database_restart_costs_one_503_not_a_500_per_pooled_connection(asgi_server):
    """PostgreSQL restarted under a running server: its pooled connections are all dead."""
    import httpx

    with httpx.Client(base_url=asgi_server.url, timeout=10) as http:
        for _ in range(3):
            assert http.get("/runs").status_code == 200
        assert terminate_connections(asgi_server.db_application_name) >= 1

        statuses = [http.get("/runs").status_code for _ in range(5)]

    assert statuses[0] in (200, 503)  # 503 `database_unavailable`, never a 500
    assert statuses[1:] == [200, 200, 200, 200]
