"""Generated requests against every operation of /openapi.json, over real HTTP:
no 5xx, and every response matches the schema of its status."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.conftest import SERVER_KEYS

KEY = {"X-API-Key": SERVER_KEYS[2]}


def _document() -> dict:
    # The document /openapi.json serves, built in-process so the operations are
    # known when tests are collected; the calls then go to a real server.
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


# Bounded for the suite's time budget: generated cases only (25 per operation),
# without the exhaustive boundary-value ("coverage") phase.
# The event stream stays open while its run lives, so it has tests of its own.
schema = schemathesis.openapi.from_dict(
    _document(), config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
).exclude(path_regex=r"/events$")


def test_the_served_document_is_the_one_tested(keyed_server):  # type: ignore[no-untyped-def]
    served = httpx.get(f"{keyed_server.url}/openapi.json", headers=KEY).json()

    assert served["paths"].keys() == schema.raw_schema["paths"].keys()


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
# Derandomized: the same cases on every run, so the suite's verdict is repeatable.
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_openapi_document(case, keyed_server):  # type: ignore[no-untyped-def]
    if "run_id" in (case.path_parameters or {}):
        # Random ids only ever meet a 404; a fresh real run reaches the code behind it.
        created = httpx.post(f"{keyed_server.url}/runs?mode=redis", json={}, headers=KEY)
        case.path_parameters["run_id"] = created.json()["runId"]
    case.call_and_validate(
        base_url=keyed_server.url,
        headers=KEY,
        timeout=10,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ],
    )
