"""Request bodies are judged and explained by one compiled validator: what it
accepts, and the fields it names in what it refuses."""

from __future__ import annotations

import pytest

from runs.exceptions import SchemaViolation
from runs.validation import validate

APPEND = "checkpoint.schema.json#/$defs/appendRequest"
CREATE = "run.schema.json#/$defs/createRunRequest"
PATCH = "run.schema.json#/$defs/patchRunRequest"

# Each body with the fields a refusal names ([]: accepted).
BODIES = [
    (APPEND, {"type": "log"}, []),
    (APPEND, {"type": "log", "data": {"deep": [1, 2.5, None, True, {"x": "y"}]}}, []),
    (APPEND, {"type": "log", "data": 10**30}, []),
    (APPEND, {"type": ""}, ["type"]),
    (APPEND, {"type": "t" * 200}, []),
    (APPEND, {"type": "t" * 201}, ["type"]),
    (APPEND, {"type": "😀" * 200}, []),
    (APPEND, {"data": 1}, ["type"]),
    (APPEND, {"type": 5}, ["type"]),
    (APPEND, {"type": "log", "extra": 1}, ["extra"]),
    (APPEND, {"checkpoints": [{"type": "a"}, {"type": "b", "data": None}]}, []),
    (APPEND, {"checkpoints": []}, ["checkpoints"]),
    (APPEND, {"checkpoints": [{"type": "a"}] * 500}, []),
    (APPEND, {"checkpoints": [{"type": "a"}] * 501}, ["checkpoints"]),
    (APPEND, {"checkpoints": [{"type": "a"}, {"data": 2}]}, ["checkpoints[1].type"]),
    (APPEND, {"checkpoints": [{"type": "a"}], "type": "b"}, ["checkpoints"]),
    (APPEND, [], ["(body)"]),
    (APPEND, "log", ["(body)"]),
    (CREATE, {}, []),
    (CREATE, {"spec": None, "metadata": {"k": "v"}}, []),
    (
        CREATE,
        {"spec": {"task": "sleep", "input": {"seconds": 1}, "maxAttempts": 3, "timeoutSeconds": 0.5}},
        [],
    ),
    (CREATE, {"spec": {"task": "sleep", "timeoutSeconds": 0}}, ["spec.timeoutSeconds"]),
    (CREATE, {"spec": {"task": "sleep", "maxAttempts": 21}}, ["spec.maxAttempts"]),
    (CREATE, {"spec": {"task": "sleep", "maxAttempts": 2.5}}, ["spec.maxAttempts"]),
    (CREATE, {"spec": {"image": "busybox", "command": ["echo", "hi"], "env": {"A_1": "x"}}}, []),
    (CREATE, {"spec": {"image": "busybox", "env": {"1A": "x"}}}, ["spec.env"]),
    (CREATE, {"spec": {"image": "busybox", "env": {"A": 1}}}, ["spec.env.A"]),
    (CREATE, {"spec": {"image": "busybox", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}}, []),
    (
        CREATE,
        {"spec": {"image": "busybox", "resources": {"limits": {"cpu": "lots"}}}},
        ["spec.resources.limits.cpu"],
    ),
    (
        CREATE,
        {"spec": {"image": "busybox", "resources": {"limits": {"c p u": "1"}}}},
        ["spec.resources.limits"],
    ),
    (CREATE, {"spec": {"image": "busybox", "command": []}}, ["spec.command"]),
    (CREATE, {"spec": {"unknown": 1}}, ["spec.unknown"]),
    (CREATE, {"mode": "redis"}, ["mode"]),
    (PATCH, {"status": "running"}, []),
    (PATCH, {"status": "failed", "error": {"code": "boom", "message": "it broke"}}, []),
    (PATCH, {"status": "failed", "error": None}, []),
    (PATCH, {"status": "canceled"}, ["status"]),
    (PATCH, {}, ["status"]),
]


@pytest.mark.parametrize(("ref", "body", "fields"), BODIES)
def test_a_body_is_accepted_or_refused_naming_its_fields(ref, body, fields):
    if not fields:
        validate(ref, body)
        return
    with pytest.raises(SchemaViolation) as refused:
        validate(ref, body)

    assert sorted(refused.value.details["fields"]) == fields


def test_a_missing_property_is_named_each_on_its_own():
    with pytest.raises(SchemaViolation) as refused:
        validate("schedule.schema.json#/$defs/createScheduleRequest", {})

    assert {"name", "mode"} <= set(refused.value.details["fields"])


def test_an_enum_refusal_lists_every_allowed_value():
    with pytest.raises(SchemaViolation) as refused:
        validate(
            "webhook.schema.json#/$defs/createWebhookRequest", {"url": "https://a.example", "events": ["x"]}
        )

    [message] = refused.value.details["fields"]["events[0]"]
    events = ["run.created", "run.running", "run.completed", "run.failed", "run.canceled", "run.retrying"]
    assert message == '"x" is not one of ' + ", ".join(f'"{event}"' for event in events)


def test_a_refused_body_names_its_fields():
    with pytest.raises(SchemaViolation) as refused:
        validate(CREATE, {"spec": {"task": "", "maxAttempts": 0}})

    assert set(refused.value.details["fields"]) == {"spec.task", "spec.maxAttempts"}


def test_a_pattern_ends_at_the_end_of_the_string_as_in_json_schema():
    """ECMA-262's `$`, which JSON Schema uses, does not match before a final
    newline, as Python's `re` does: an environment variable name with a
    newline is refused, and the refusal names the field."""
    body = {"spec": {"image": "busybox", "env": {"NAME\n": "x"}}}

    with pytest.raises(SchemaViolation) as refused:
        validate(CREATE, body)

    assert list(refused.value.details["fields"]) == ["spec.env"]
