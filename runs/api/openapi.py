"""The OpenAPI document embeds the JSON Schemas in `schemas/orchestrator`
as components, so the wire format has exactly one description."""

from __future__ import annotations

from typing import Any

from runs.validation import load_schemas

_FILES = {
    "run": "run.schema.json",
    "checkpoint": "checkpoint.schema.json",
    "event": "event.schema.json",
    "schedule": "schedule.schema.json",
    "journal": "journal.schema.json",
    "webhook": "webhook.schema.json",
    "tenant": "tenant.schema.json",
}
# The event file reuses short names (status, checkpoint) that the others own.
_PREFIX = {
    "run.schema.json": "",
    "checkpoint.schema.json": "",
    "event.schema.json": "Event",
    "schedule.schema.json": "",
    "journal.schema.json": "Journal",
    "webhook.schema.json": "",
    "tenant.schema.json": "",
}


def component_name(file_name: str, definition: str) -> str:
    return f"{_PREFIX[file_name]}{definition[0].upper()}{definition[1:]}"


def ref(definition: str, file: str = "run") -> dict[str, str]:
    """A reference to one schema definition, for `extend_schema`."""
    return {"$ref": f"#/components/schemas/{component_name(_FILES[file], definition)}"}


def _rewrite(node: Any, file_name: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target_file, _, pointer = value.partition("#")
                definition = pointer.removeprefix("/$defs/")
                out[key] = f"#/components/schemas/{component_name(target_file or file_name, definition)}"
            else:
                out[key] = _rewrite(value, file_name)
        return out
    if isinstance(node, list):
        return [_rewrite(item, file_name) for item in node]
    return node


def wire_components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for file_name, schema in load_schemas().items():
        for definition, body in schema.get("$defs", {}).items():
            components[component_name(file_name, definition)] = _rewrite(body, file_name)
    return components


def add_wire_schemas(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(wire_components())
    return result


# Operations whose body must be sent: without one they answer 422.
BODY_REQUIRED = frozenset({"updateRunStatus", "appendCheckpoints"})


def mark_required_bodies(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: `requestBody.required` as the views enforce it
    (POST /runs takes an empty body: a spec-less run, or a plan of one)."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = operation.get("operationId") in BODY_REQUIRED
    return result


# Refused in any query parameter (PostgreSQL cannot store it): a 400 naming it.
NO_NUL = "^[^\\u0000]*$"


def describe_query_values(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: query parameters as the API reads them.
    An optional one sent empty counts as absent (`?after=` is no `after`), as v1 clients
    that build query strings with empty values rely on; no string may hold U+0000."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query":
                    continue
                if not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
                schema = parameter.get("schema", {})
                if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
                    schema["pattern"] = NO_NUL
    return result
