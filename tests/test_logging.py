"""One structured line per request and per state change; never a credential."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from orchestrator.logging import PlainFormatter, redact
from runs import tokens
from tests.conftest import SERVER_KEYS
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_requests_and_state_changes_log_json_lines_without_credentials(keyed_server):
    key = SERVER_KEYS[1]
    created = httpx.post(
        f"{keyed_server.url}/runs?mode=redis",
        json={"spec": {"task": "sleep"}},
        headers={"Authorization": f"Bearer {key}", "X-Request-ID": "log-test-create"},
    )
    run_id = created.json()["runId"]
    worker_token, _ = tokens.mint(tokens.WORKER, run_id)
    stream_token, _ = tokens.mint(tokens.STREAM, run_id)
    httpx.patch(
        f"{keyed_server.url}/runs/{run_id}",
        json={"status": "running"},
        headers={"Authorization": f"Bearer {worker_token}", "X-Request-ID": "log-test-patch"},
    )
    with httpx.stream("GET", f"{keyed_server.url}/runs/{run_id}/events?token={stream_token}", timeout=10):
        pass
    httpx.get(f"{keyed_server.url}/runs/{run_id}?token={stream_token}", headers={"X-API-Key": "wrong-key"})

    def access_line_for(request_id: str) -> dict | None:
        for line in json_lines(keyed_server.log()):
            if line.get("event") == "http_request" and line.get("requestId") == request_id:
                return line
        return None

    wait_for(lambda: access_line_for("log-test-patch") is not None, timeout=5, what="the access log line")
    log = keyed_server.log()
    access = access_line_for("log-test-create")
    assert access is not None
    assert access["method"] == "POST" and access["path"] == "/runs" and access["status"] == 201
    assert access["route"] == "/runs" and access["client"] == "127.0.0.1" and access["auth"] == "api_key"
    assert isinstance(access["durationMs"], float)
    changes = [line for line in json_lines(log) if line.get("event") == "run_status"]
    assert {"runId": run_id, "status": "running", "requestId": "log-test-patch"}.items() <= changes[
        -1
    ].items()
    for secret in (key, worker_token, stream_token, "wrong-key"):
        assert secret not in log


def test_a_server_without_a_key_warns_loudly_at_start_up(asgi_server):
    # The server is shared by the session: its start-up is at the top of a long log.
    assert "ORCHESTRATOR_API_KEY is not set" in asgi_server.log(tail=None)


def test_a_server_with_a_key_does_not_warn(keyed_server):
    assert "ORCHESTRATOR_API_KEY is not set" not in keyed_server.log(tail=None)


def test_plain_lines_read_well_and_keep_their_fields():
    record = logging.makeLogRecord(
        {"name": "runs.services", "levelname": "INFO", "msg": "run status changed", "request_id": "r1"}
    )
    record.runId, record.status, record.event = "abc", "completed", "run_status"

    line = PlainFormatter().format(record)

    assert line.endswith("INFO [r1] runs.services: run status changed runId=abc status=completed")


def test_redaction_blanks_keys_bearers_and_url_tokens():
    text = "GET /runs/1/events?replay=5&token=abc.def:ghi Authorization: Bearer s3cr3t key=k-123"

    cleaned = redact(text, keys=["k-123"])

    assert cleaned == (
        "GET /runs/1/events?replay=5&token=[redacted] Authorization: Bearer [redacted] key=[redacted]"
    )


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("GET /x?TOKEN=abc", "GET /x?TOKEN=[redacted]"),
        ("authorization: BeArEr abc", "authorization: BeArEr [redacted]"),
        # The Kelvin sign matches "k" case-insensitively: the quick check
        # before the patterns must not let it through.
        ("GET /x?to\u212aen=abc", "GET /x?to\u212aen=[redacted]"),
        ("GET /runs/1/checkpoints 201 1.0ms", "GET /runs/1/checkpoints 201 1.0ms"),
    ],
)
def test_redaction_is_case_insensitive_and_leaves_other_text_alone(text, cleaned):
    assert redact(text, keys=[]) == cleaned
