"""Request bodies are judged by a compiled validator and explained by jsonschema:
the two must agree on what the API accepts."""

from __future__ import annotations

import pytest

from runs.exceptions import SchemaViolation
from runs.validation import quick_validator, validate, validator

APPEND = "checkpoint.schema.json#/$defs/appendRequest"
CREATE = "run.schema.json#/$defs/createRunRequest"
PATCH = "run.schema.json#/$defs/patchRunRequest"

BODIES = [
    (APPEND, {"type": "log"}),
    (APPEND, {"type": "log", "data": {"deep": [1, 2.5, None, True, {"x": "y"}]}}),
    (APPEND, {"type": "log", "data": 10**30}),
    (APPEND, {"type": ""}),
    (APPEND, {"type": "t" * 200}),
    (APPEND, {"type": "t" * 201}),
    (APPEND, {"type": "😀" * 200}),
    (APPEND, {"data": 1}),
    (APPEND, {"type": 5}),
    (APPEND, {"type": "log", "extra": 1}),
    (APPEND, {"checkpoints": [{"type": "a"}, {"type": "b", "data": None}]}),
    (APPEND, {"checkpoints": []}),
    (APPEND, {"checkpoints": [{"type": "a"}] * 500}),
    (APPEND, {"checkpoints": [{"type": "a"}] * 501}),
    (APPEND, {"checkpoints": [{"type": "a"}, {"data": 2}]}),
    (APPEND, {"checkpoints": [{"type": "a"}], "type": "b"}),
    (APPEND, []),
    (APPEND, "log"),
    (CREATE, {}),
    (CREATE, {"spec": None, "metadata": {"k": "v"}}),
    (CREATE, {"spec": {"task": "sleep", "input": {"seconds": 1}, "maxAttempts": 3, "timeoutSeconds": 0.5}}),
    (CREATE, {"spec": {"task": "sleep", "timeoutSeconds": 0}}),
    (CREATE, {"spec": {"task": "sleep", "maxAttempts": 21}}),
    (CREATE, {"spec": {"task": "sleep", "maxAttempts": 2.5}}),
    (CREATE, {"spec": {"image": "busybox", "command": ["echo", "hi"], "env": {"A_1": "x"}}}),
    (CREATE, {"spec": {"image": "busybox", "env": {"1A": "x"}}}),
    (CREATE, {"spec": {"image": "busybox", "env": {"A": 1}}}),
    (CREATE, {"spec": {"image": "busybox", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}}),
    (CREATE, {"spec": {"image": "busybox", "resources": {"limits": {"cpu": "lots"}}}}),
    (CREATE, {"spec": {"image": "busybox", "resources": {"limits": {"c p u": "1"}}}}),
    (CREATE, {"spec": {"image": "busybox", "command": []}}),
    (CREATE, {"spec": {"unknown": 1}}),
    (CREATE, {"mode": "redis"}),
    (PATCH, {"status": "running"}),
    (PATCH, {"status": "failed", "error": {"code": "boom", "message": "it broke"}}),
    (PATCH, {"status": "failed", "error": None}),
    (PATCH, {"status": "canceled"}),
    (PATCH, {}),
]


@pytest.mark.parametrize(("ref", "body"), BODIES)
def test_the_compiled_validator_agrees_with_jsonschema(ref, body):
    assert quick_validator(ref).is_valid(body) == validator(ref).is_valid(body)


def test_a_refused_body_names_its_fields():
    with pytest.raises(SchemaViolation) as refused:
        validate(CREATE, {"spec": {"task": "", "maxAttempts": 0}})

    assert set(refused.value.details["fields"]) == {"spec.task", "spec.maxAttempts"}


def test_a_pattern_ends_at_the_end_of_the_string_as_in_json_schema():
    """ECMA-262's `$`, which JSON Schema uses, does not match before a final
    newline, as Python's does: an environment variable name with a newline
    is refused, and the refusal still names the field."""
    body = {"spec": {"image": "busybox", "env": {"NAME\n": "x"}}}
    assert validator(CREATE).is_valid(body)  # Python's `re` would have let it through

    with pytest.raises(SchemaViolation) as refused:
        validate(CREATE, body)

    assert list(refused.value.details["fields"]) == ["spec.env"]
