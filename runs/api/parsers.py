"""JSON parsing that answers every malformed body with a 4xx, never a 500."""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from runs.exceptions import SchemaViolation

MAX_DEPTH = 64


# PostgreSQL jsonb holds neither U+0000 nor a UTF-16 surrogate on its own
# (JSON's "\ud800" escape parses to one), and a deep nest only costs us.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_text(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "U+0000" if found.group() == "\x00" else "unpaired surrogates"


def _reject_unstorable(value: Any, path: str = "", depth: int = 0) -> None:
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
            _reject_unstorable(item, child, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_unstorable(item, f"{path}[{index}]", depth + 1)


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: empty is {}, and anything unparsable or unstorable a 4xx."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
    _reject_unstorable(data)
    return data


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return parse_json(stream.read() if stream is not None else b"")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
