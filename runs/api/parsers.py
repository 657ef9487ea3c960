"""JSON parsing that answers every malformed body with a 4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from runs.exceptions import SchemaViolation

MAX_DEPTH = 64


def _reject_unstorable(value: Any, path: str = "", depth: int = 0) -> None:
    # PostgreSQL jsonb cannot hold U+0000, and a deep nest only costs us.
    if depth > MAX_DEPTH:
        raise SchemaViolation({path or "(body)": [f"nested deeper than {MAX_DEPTH} levels"]})
    if isinstance(value, str):
        if "\x00" in value:
            raise SchemaViolation({path or "(body)": ["strings must not contain U+0000"]})
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                raise SchemaViolation({path or "(body)": ["keys must not contain U+0000"]})
            _reject_unstorable(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_unstorable(item, f"{path}[{index}]", depth + 1)


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        _reject_unstorable(data)
        return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
