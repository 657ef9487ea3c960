"""Generated requests against every operation of /openapi.json, over real HTTP:
no 5xx, and every response matches the schema of its status."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from tests.conftest import SERVER_KEYS

KEY = {"Authorization": f"Bearer {SERVER_KEYS[2]}"}

load_all_checks()
# What `schemathesis run --checks all` runs.
ALL_CHECKS = CHECKS.get_all()


def _document() -> dict:
    # The document /openapi.json serves, built in-process so the operations are
    # known when tests are collected; the calls then go to a real server.
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


# Bounded for the suite's time budget: generated cases only (25 per operation),
# without the exhaustive boundary-value ("coverage") phase.
# The event stream stays open while its run lives, so it has tests of its own.
# One refinement of `--checks all`: `cursor` is opaque (nextCursor of an earlier
# page), so a generated one is a 400 however valid its type; the document says so.
CONFIG = {
    "phases": {"coverage": {"enabled": False}},
    "operations": [
        *(
            {
                "include-operation-id": operation,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
                    }
                },
            }
            for operation in (
                "listRuns",
                "listSchedules",
                "listWebhooks",
                "listWebhookDeliveries",
                "listApiKeys",
                "listAuditEntries",
            )
        ),
        # A webhook URL of the right form is still refused (422) when its host is
        # not public or does not resolve, and a per-run webhook when the server
        # has no WEBHOOK_SECRET: the schema cannot say where a host resolves to.
        *(
            {
                "include-operation-id": operation,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
                    }
                },
            }
            for operation in ("createRun", "createWebhook", "updateWebhook")
        ),
        # A key's expiresAt must be in the future: a 422 the schema cannot state.
        {
            "include-operation-id": "createApiKey",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
                }
            },
        },
        # A schedule's rules across fields (exactly one of cron and intervalSeconds,
        # a k8s spec's image, a timestamp's form) are 422s the schema cannot state,
        # and a preview's cron that does not parse is a 400.
        *(
            {
                "include-operation-id": operation,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
                    }
                },
            }
            for operation in ("createSchedule", "updateSchedule", "previewSchedule")
        ),
    ],
}
schema = schemathesis.openapi.from_dict(_document(), config=SchemathesisConfig.from_dict(CONFIG)).exclude(
    path_regex=r"/events$"
)


def test_the_served_document_is_the_one_tested(keyed_server):
    served = httpx.get(f"{keyed_server.url}/openapi.json", headers=KEY).json()

    assert served["paths"].keys() == schema.raw_schema["paths"].keys()


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
# Derandomized: the same cases on every run, so the suite's verdict is repeatable.
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_openapi_document(case, keyed_server):
    if "run_id" in (case.path_parameters or {}):
        # Random ids only ever meet a 404; a fresh real run reaches the code behind it.
        created = httpx.post(f"{keyed_server.url}/runs?mode=redis", json={}, headers=KEY)
        case.path_parameters["run_id"] = created.json()["runId"]
    case.call_and_validate(
        base_url=keyed_server.url,
        headers=KEY,
        timeout=10,
        checks=ALL_CHECKS,
    )


# What a fuzzer found before, sent as it was, with the one answer that is right.
REPRODUCTIONS = [
    ("GET", "/runs?owner=a%00b", None, 400),
    ("POST", "/runs?mode=redis&owner=a%00b", b'{"spec": {"task": "sleep"}}', 400),
    ("GET", "/runs?owner=" + "o" * 201, None, 400),
    ("GET", "/runs?createdAfter=9999-12-31T23:59:59-23:59", None, 200),
    ("GET", "/runs?createdBefore=0001-01-01T00:00:00%2B23:59", None, 200),
    ("POST", "/runs?mode=redis", b'{"spec": {"task": "sleep"}, "metadata": {"x": 1e400}}', 422),
    ("POST", "/runs?mode=plan", b'{"spec": {"task": "sleep", "input": 1e400}}', 422),
    ("POST", "/runs/{run}/checkpoints", b'{"type": "t", "data": 1e400}', 422),
    ("POST", "/runs/{run}/checkpoints", b'{"type": "   "}', 422),
    ("GET", "/runs/{run}/checkpoints?after=9999-12-31T23:59:59-23:59", None, 200),
    ("GET", "/runs/{run}/checkpoints?after=&limit=1", None, 200),
    (
        "PATCH",
        "/runs/{run}",
        b'{"status": "failed", "error": {"code": "x", "message": "m", "n": 1e400}}',
        422,
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "body", "status"), REPRODUCTIONS)
def test_what_a_fuzzer_found_gets_the_answer_the_document_describes(keyed_server, method, path, body, status):
    run = httpx.post(f"{keyed_server.url}/runs?mode=redis", headers=KEY).json()["runId"]
    url = keyed_server.url + path.format(run=run)
    headers = {**KEY, "Content-Type": "application/json"} if body else KEY

    response = httpx.request(method, url, content=body, headers=headers, timeout=10)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    if status >= 400:
        assert set(response.json()) >= {"error", "code", "details", "requestId"}
