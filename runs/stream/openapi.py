"""The event streams in the OpenAPI document. Their views are plain async
Django views that drf-spectacular cannot see, so a post-processing hook adds them."""

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


def _last_event_id(what: str, schema: dict[str, Any]) -> dict[str, Any]:
    description = f"Resume after this event id, {what} (sent by browsers on reconnect)."
    return {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


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
        _last_event_id("a checkpoint ts", {"type": "string", "format": "date-time"}),
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


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LIST_EVENTS_OPERATION: dict[str, Any] = {
    "operationId": "streamRunList",
    "tags": ["runs"],
    "summary": "Stream every run change (the run journal) as Server-Sent Events",
    "description": (
        "`retry:`; then, when the resume point is past what the journal keeps, `event: reset` (no id); "
        "then `event: run` entries (`id:` = journal id) after the resume point, or the last `replay` "
        "matching ones, then live as runs change; `: keep-alive` comments while idle. The stream never "
        "ends by itself. Browsers pass a token from `POST /runs/stream-token` as `?token=`."
    ),
    "parameters": [
        _query("owner", "Only runs of this owner.", {"type": "string"}),
        _query("mode", "Only runs of this mode.", {"type": "string", "enum": ["redis", "k8s"]}),
        _query("type", "Only these entry types, comma-separated.", {"type": "string"}),
        _query("scheduleId", "Only runs made by this schedule.", {"type": "string", "format": "uuid"}),
        _query(
            "replay",
            "Matching entries to send before live ones, without a resume point.",
            {"type": "integer", "minimum": 0, "maximum": 1000, "default": 0},
        ),
        _query(
            "lastEventId",
            "Resume after this journal id (the Last-Event-ID header wins).",
            ref("entryId", "journal"),
        ),
        _query("token", "A token from POST /runs/stream-token (browsers).", {"type": "string"}),
        _last_event_id("a journal id", ref("entryId", "journal")),
    ],
    "responses": {
        "200": {
            "description": "The event stream; each `data:` is one JSON object.",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "Server-Sent Events",
                        "x-event-data": {"run": ref("entry", "journal"), "reset": ref("reset", "journal")},
                    }
                }
            },
        },
        "400": _error("A malformed Last-Event-ID / lastEventId, or a bad filter or replay."),
        "401": _error("No credential good for this stream."),
    },
}


def add_event_stream(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook."""
    paths = result.setdefault("paths", {})
    paths.setdefault("/runs/{run_id}/events", {})["get"] = EVENTS_OPERATION
    paths.setdefault("/runs/events", {})["get"] = LIST_EVENTS_OPERATION
    return result
