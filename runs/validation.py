"""Request bodies validated against the JSON Schemas in `schemas/orchestrator`.

The schema files are the single source of the wire format: the API validates
what it receives with them, the OpenAPI document embeds them, and the tests
validate what the API sends with them.

One engine judges and explains: jsonschema-rs, compiled, a few hundred times
faster than the pure-Python jsonschema on the ingest path, and its errors
carry what naming a field takes (the instance path, the missing or unexpected
property, a union's branches). It follows JSON Schema's ECMA-262 regular
expressions, where `$` does not match before a final newline, as Python's
`re` would. What it cannot hold, a string with a lone surrogate, PostgreSQL
cannot store either, and `check_storable` names it.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from django.conf import settings

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
def validator(ref: str) -> jsonschema_rs.Validator:
    """A compiled validator for `file#/$defs/name` (or a whole file).
    Formats are not asserted (they are annotations in draft 2020-12)."""
    return jsonschema_rs.Draft202012Validator(_schema(ref), validate_formats=False)


def _joined(parts: Any, prefix: str) -> str:
    path = prefix
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path


def _field_path(error: Any, prefix: str) -> str:
    """The field an error is about: for a missing or an unexpected property,
    that property rather than the object holding it."""
    path = _joined(error.instance_path, prefix)
    kinds = jsonschema_rs.ValidationErrorKind
    named = None
    if isinstance(error.kind, kinds.Required):
        named = error.kind.property
    elif isinstance(error.kind, kinds.AdditionalProperties) and error.kind.unexpected:
        named = error.kind.unexpected[0]
    if isinstance(named, str):
        path = f"{path}.{named}" if path else named
    return path or "(body)"


def _leaf_errors(error: Any) -> list[Any]:
    """The errors that name fields, looking through oneOf/anyOf.

    Of a union's failing branches, the client meant the one whose type fits
    the value: the fewest errors among those that fit (among all, if none
    does). Its errors are the useful ones.
    """
    branches = getattr(error.kind, "context", None)
    if not branches:
        return [error]
    depth = len(error.instance_path)
    kinds = jsonschema_rs.ValidationErrorKind

    def misfit(sub: Any) -> bool:
        return isinstance(sub.kind, kinds.Type | kinds.Constant) and len(sub.instance_path) == depth

    fitting = [subs for subs in branches if not any(misfit(sub) for sub in subs)] or list(branches)
    chosen = min(fitting, key=len)
    return [leaf for sub in chosen for leaf in _leaf_errors(sub)]


def validate(ref: str, instance: Any, *, prefix: str = "") -> None:
    """Raise SchemaViolation naming every bad field, or return quietly."""
    compiled = validator(ref)
    try:
        if compiled.is_valid(instance):
            return
    except ValueError:  # a string Rust cannot hold (a lone surrogate), nor PostgreSQL
        check_storable(instance, prefix)
        raise
    fields: dict[str, list[str]] = {}
    for error in compiled.iter_errors(instance):
        for leaf in _leaf_errors(error):
            fields.setdefault(_field_path(leaf, prefix), []).append(_message(leaf)[:300])
    raise SchemaViolation(dict(sorted(fields.items())))


def _message(error: Any) -> str:
    # The engine's own message lists only two of an enum's values ("or 4
    # other candidates"); a client needs them all.
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Enum):
        allowed = ", ".join(json.dumps(option) for option in error.kind.options)
        return f"{json.dumps(error.instance)} is not one of {allowed}"
    return str(error.message)


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
    # Every body passes, so the walk that names a field (a path string built
    # for each node) runs only once the lean one has found something.
    if not _storable(value, depth):
        _name_unstorable(value, path, depth)


def _storable(value: Any, depth: int) -> bool:
    """Whether `_name_unstorable` would find nothing: the same rules, no names.
    A type json.loads does not make is left to the naming walk."""
    if depth > MAX_DEPTH:
        return False
    kind = type(value)
    if kind is dict or kind is list:
        if value and depth == MAX_DEPTH:
            return False
        search = _UNSTORABLE.search
        if kind is dict:
            for key in value:
                if type(key) is not str or search(key):
                    return False
            value = value.values()
        # The children judged in this loop, not a call each: most are strings and numbers.
        for item in value:
            child = type(item)
            if child is str:
                if search(item):
                    return False
            elif child is float:
                if not math.isfinite(item):
                    return False
            elif child not in _PLAIN and not _storable(item, depth + 1):
                return False
        return True
    if kind is str:
        return _UNSTORABLE.search(value) is None
    if kind is float:
        return math.isfinite(value)
    return kind in _PLAIN


_PLAIN = frozenset({int, bool, type(None)})


def _name_unstorable(value: Any, path: str = "", depth: int = 0) -> None:
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
            _name_unstorable(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _name_unstorable(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        # 1e400 parses to infinity, which no JSON (and no jsonb) can hold.
        raise SchemaViolation({path or "(body)": ["number out of range"]})
