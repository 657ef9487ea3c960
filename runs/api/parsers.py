"""JSON parsing that answers every malformed body with a 4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from runs.exceptions import SchemaViolation
from runs.validation import MAX_DEPTH, check_storable


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: empty is {}, and anything unparsable or unstorable a 4xx."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        # Valid JSON nested past what the parser follows (far past MAX_DEPTH):
        # refused as any nesting over the limit is, a 422.
        raise SchemaViolation({"(body)": [f"nested deeper than {MAX_DEPTH} levels"]}) from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
    check_storable(data)
    return data


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return parse_json(stream.read() if stream is not None else b"")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
