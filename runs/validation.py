"""Request bodies validated against the JSON Schemas in `schemas/orchestrator`.

The schema files are the single source of the wire format: the API validates
what it receives with them, the OpenAPI document embeds them, and the tests
validate what the API sends with them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from django.conf import settings
from jsonschema import Draft202012Validator

from runs.exceptions import SchemaViolation

SCHEMA_DIR = Path(settings.BASE_DIR) / "schemas" / "orchestrator"
SCHEMA_FILES = (
    "run.schema.json",
    "checkpoint.schema.json",
    "event.schema.json",
    "journal.schema.json",
    "webhook.schema.json",
    "schedule.schema.json",
    "tenant.schema.json",
)


@cache
def load_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file by name, parsed."""
    return {name: json.loads((SCHEMA_DIR / name).read_text()) for name in SCHEMA_FILES}


def _definition(file_name: str, pointer: str) -> Any:
    node: Any = load_schemas()[file_name]
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        node = node[part]
    return node


def _inline(node: Any, file_name: str) -> Any:
    """The schema with every $ref replaced by what it points to.

    Our schemas are acyclic, and a validator over a ref-free schema skips
    the registry lookups that dominated validating a batch of checkpoints.
    """
    if isinstance(node, dict):
        if "$ref" in node:
            target_file, _, pointer = node["$ref"].partition("#")
            target_file = target_file or file_name
            resolved = _inline(_definition(target_file, pointer), target_file)
            siblings = {k: _inline(v, file_name) for k, v in node.items() if k != "$ref"}
            return {"allOf": [resolved, siblings]} if siblings else resolved
        return {key: _inline(value, file_name) for key, value in node.items() if key not in ("$defs", "$id")}
    if isinstance(node, list):
        return [_inline(item, file_name) for item in node]
    return node


def _schema(ref: str) -> Any:
    file_name, _, pointer = ref.partition("#")
    return _inline(_definition(file_name, pointer), file_name)


@cache
def validator(ref: str) -> Draft202012Validator:
    """A validator for `file#/$defs/name` (or a whole file)."""
    return Draft202012Validator(_schema(ref))


@cache
def quick_validator(ref: str) -> jsonschema_rs.Validator:
    """The same schema in a compiled validator, a few hundred times faster.
    Formats are not asserted, as in `validator`."""
    return jsonschema_rs.Draft202012Validator(_schema(ref), validate_formats=False)


def _joined(parts: Any, prefix: str) -> str:
    path = prefix
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path


def _field_path(error: Any, prefix: str) -> str:
    path = _joined(error.absolute_path, prefix)
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = next((name for name in error.validator_value if name not in (error.instance or {})), None)
        if missing:
            path = f"{path}.{missing}" if path else missing
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = next((name for name in error.instance if name not in allowed), None)
        if extra:
            path = f"{path}.{extra}" if path else extra
    return path or "(body)"


def _meant_branch(branches: list[list[Any]], misfit: Callable[[Any], bool]) -> list[Any]:
    """Of a union's failing branches, the one the client meant: the fewest
    errors among those whose type fits the value (among all, if none fits)."""
    fitting = [subs for subs in branches if not any(misfit(sub) for sub in subs)] or branches
    return min(fitting, key=len)


def _leaf_errors(error: Any) -> list[Any]:
    """The errors that name fields, looking through oneOf/anyOf/allOf.

    For a union, the branch whose type fits the value is the one the client
    meant; its errors are the useful ones.
    """
    if not error.context:
        return [error]
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    depth = len(error.absolute_path)
    chosen = _meant_branch(
        list(branches.values()),
        lambda sub: sub.validator in ("type", "const") and len(sub.absolute_path) == depth,
    )
    return [leaf for sub in chosen for leaf in _leaf_errors(sub)]


def _quick_leaf_errors(error: Any) -> list[Any]:
    """`_leaf_errors` for the compiled validator's errors."""
    branches = getattr(error.kind, "context", None)
    if not branches:
        return [error]
    depth = len(error.instance_path)
    kinds = jsonschema_rs.ValidationErrorKind
    chosen = _meant_branch(
        list(branches),
        lambda sub: isinstance(sub.kind, kinds.Type | kinds.Constant) and len(sub.instance_path) == depth,
    )
    return [leaf for sub in chosen for leaf in _quick_leaf_errors(sub)]


def validate(ref: str, instance: Any, *, prefix: str = "") -> None:
    """Raise SchemaViolation naming every bad field, or return quietly.

    The compiled validator decides; jsonschema, much slower, only names the
    fields of what it refused. They agree but on regular expressions: JSON
    Schema's are ECMA-262, where `$` does not match before a final newline,
    and the compiled validator follows that where Python's `re` does not.
    """
    quick = quick_validator(ref)
    try:
        if quick.is_valid(instance):
            return
        quick_refused = True
    except ValueError:  # a string Rust cannot hold (a lone surrogate): jsonschema alone judges
        quick_refused = False
    fields: dict[str, list[str]] = {}
    for error in validator(ref).iter_errors(instance):
        for leaf in _leaf_errors(error):
            fields.setdefault(_field_path(leaf, prefix), []).append(leaf.message[:300])
    if not fields and quick_refused:
        for error in quick.iter_errors(instance):
            for leaf in _quick_leaf_errors(error):
                fields.setdefault(_joined(leaf.instance_path, prefix) or "(body)", []).append(
                    leaf.message[:300]
                )
    if fields:
        raise SchemaViolation(dict(sorted(fields.items())))


# PostgreSQL jsonb holds neither U+0000 nor a UTF-16 surrogate on its own
# (JSON's "\ud800" escape parses to one); a number past a double's range
# parses to infinity, which JSON cannot hold; and a deep nest only costs us.
MAX_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_text(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "U+0000" if found.group() == "\x00" else "unpaired surrogates"


def check_storable(value: Any, path: str = "", depth: int = 0) -> None:
    """Raise SchemaViolation naming the first part of a JSON value PostgreSQL cannot store."""
    if depth > MAX_DEPTH:
        raise SchemaViolation({path or "(body)": [f"nested deeper than {MAX_DEPTH} levels"]})
    if isinstance(value, str):
        if (what := _unstorable_text(value)) is not None:
            raise SchemaViolation({path or "(body)": [f"strings must not contain {what}"]})
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if (what := _unstorable_text(key)) is not None:
                raise SchemaViolation({path or "(body)": [f"keys must not contain {what}"]})
            check_storable(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        # 1e400 parses to infinity, which no JSON (and no jsonb) can hold.
        raise SchemaViolation({path or "(body)": ["number out of range"]})
