"""The OpenAPI document describes the whole API with the wire schemas."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_lists_every_endpoint_and_embeds_the_wire_schemas(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/checkpoints"} <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert {"Run", "Checkpoint", "ErrorResponse", "EventHello"} <= set(schemas)
    post = document["paths"]["/runs"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateRunRequest"
    }


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_in_the_document_names_a_component(client):
    document = client.get("/openapi.json").json()
    names = set(document["components"]["schemas"])

    dangling = {ref for ref in _refs(document) if ref.removeprefix("#/components/schemas/") not in names}

    assert dangling == set()
