"""The event stream in the OpenAPI document. Its view is a plain async Django
view that drf-spectacular cannot see, so a post-processing hook adds it."""

from __future__ import annotations

from typing import Any

from runs.api.openapi import ref


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("errorResponse")}}}


EVENTS_DESCRIPTION = (
    "The event stream. Each event is `event: <name>`, an optional `id:`, and one `data:` line "
    "holding one JSON object:\n"
    "- `hello` (no id): first on every connection, `{runId, run}` (EventHello);\n"
    "- `checkpoint` (id: the checkpoint ts): one checkpoint (Checkpoint), in seq order;\n"
    "- `status` (no id): a status change, `{runId, status, run}` (EventStatus);\n"
    "- `end` (id: the last checkpoint ts, or finishedAt): the final status, same shape as `status`, "
    "after every checkpoint; then the stream closes.\n"
    "`retry: <ms>` comes first, and `: keep-alive` comments while idle."
)


EVENTS_OPERATION: dict[str, Any] = {
    "operationId": "streamRunEvents",
    "tags": ["runs"],
    "summary": "Stream a run's life as Server-Sent Events",
    "description": (
        "`retry:` then `event: hello` (no id); replay of checkpoints after the resume point, or the last "
        "`replay` ones; live `checkpoint` events (`id:` = checkpoint ts) and `status` events (no id); "
        "`: keep-alive` comments while idle; `event: end` (id = last checkpoint ts, or finishedAt) once "
        "the run is final and every checkpoint was sent, then the stream closes. A resume of a final run "
        "with nothing newer answers 204, which stops EventSource."
    ),
    "parameters": [
        {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
        {
            "name": "replay",
            "in": "query",
            "required": False,
            "description": "Checkpoints to replay without a resume point.",
            "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 10},
        },
        {
            "name": "lastEventId",
            "in": "query",
            "required": False,
            "description": "Resume after this checkpoint ts (the Last-Event-ID header wins).",
            "schema": {"type": "string", "format": "date-time"},
        },
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "Resume after this checkpoint ts (sent by browsers on reconnect).",
            "schema": {"type": "string", "format": "date-time"},
        },
    ],
    "responses": {
        "200": {
            "description": EVENTS_DESCRIPTION,
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "Server-Sent Events; the data of each event, by name, in x-event-data",
                        "x-event-data": {
                            "hello": ref("hello", "event"),
                            "checkpoint": ref("checkpoint", "checkpoint"),
                            "status": ref("status", "event"),
                            "end": ref("status", "event"),
                        },
                    }
                }
            },
        },
        "204": {"description": "Resume of a final run with nothing newer: stop reconnecting (no body)."},
        "400": _error("Malformed Last-Event-ID / lastEventId, or replay out of range."),
        "404": _error("Unknown run."),
    },
}


def add_event_stream(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook."""
    result.setdefault("paths", {}).setdefault("/runs/{run_id}/events", {})["get"] = EVENTS_OPERATION
    return result
