"""`manage.py runs_tail`: follows a run's event stream over HTTP and resumes
after a dropped connection without missing or repeating a checkpoint.

These tests speak to a scripted SSE peer, which can drop a connection in the
middle of an event at an exact point; `test_runs_tail_against_the_server`
follows a real run on the real server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from runs.wire import format_ts

RUN_ID = "5b0e7f4e-8d3a-4f57-9a43-0d4b1c0c2a11"
TS = ["2026-11-25T10:00:00.000001Z", "2026-11-25T10:00:00.000002Z", "2026-11-25T10:00:00.000003Z"]


def run_body(status: str, count: int) -> dict[str, Any]:
    return {"id": RUN_ID, "mode": "redis", "status": status, "checkpointCount": count,
            "updatedAt": "2026-11-25T10:00:01.000000Z"}  # fmt: skip


def checkpoint(seq: int) -> str:
    body = {
        "id": str(seq),
        "runId": RUN_ID,
        "ts": TS[seq - 1],
        "type": "step",
        "data": {"n": seq},
        "seq": seq,
    }
    return f"id: {TS[seq - 1]}\nevent: checkpoint\ndata: {json.dumps(body)}\n\n"


def hello(status: str = "running", count: int = 0) -> str:
    return f"event: hello\ndata: {json.dumps({'runId': RUN_ID, 'run': run_body(status, count)})}\n\n"


class ScriptedSSE:
    """Answers the n-th request with the n-th scripted (status, body) and closes."""

    def __init__(self, script: list[tuple[int, str]]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, str]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                peer.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                status, body = peer.script.pop(0) if peer.script else (204, "")
                self.send_response(status)
                content_type = "text/event-stream" if status == 200 else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body.encode())
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def sse_peer(script: list[tuple[int, str]]) -> Iterator[ScriptedSSE]:
    peer = ScriptedSSE(script)
    thread = threading.Thread(target=peer.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.server.shutdown()
        peer.server.server_close()


def tail(url: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("runs_tail", RUN_ID, "--url", url, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_runs_tail_resumes_after_a_drop_mid_event_without_missing_or_repeating():
    cut_mid_event = checkpoint(3)[:40]  # id and event sent, data never finished
    end = {"runId": RUN_ID, "status": "completed", "run": run_body("completed", 3)}
    status = {"runId": RUN_ID, "status": "completed", "run": run_body("completed", 3)}
    script = [
        (200, "retry: 5\n\n" + hello() + checkpoint(1) + checkpoint(2) + cut_mid_event),
        (200, hello(count=2) + checkpoint(2) + checkpoint(3) + ": keep-alive\n\n"
              + f"event: status\ndata: {json.dumps(status)}\n\n"
              + f"id: {TS[2]}\nevent: end\ndata: {json.dumps(end)}\n\n"),
    ]  # fmt: skip

    with sse_peer(script) as peer:
        out, err = tail(peer.url, "--replay", "5")

    lines = out.splitlines()
    assert lines[0].endswith("run: running")
    assert [line.split()[1] for line in lines[1:4]] == ["#1", "#2", "#3"]
    assert lines[4].endswith("status: completed") and lines[5].endswith("end: completed")
    assert len(lines) == 6
    assert "replay=5" in peer.requests[0]["path"] and "last-event-id" not in peer.requests[0]
    assert peer.requests[1]["last-event-id"] == TS[1]
    assert f"reconnected; resuming after {TS[1]}" in err


def test_runs_tail_stops_on_204_for_a_finished_run():
    with sse_peer([(204, "")]) as peer:
        out, _ = tail(peer.url, "--last-event-id", TS[2])

    assert out == ""
    assert peer.requests[0]["last-event-id"] == TS[2]


def test_runs_tail_sends_the_api_key_and_explains_a_refusal():
    with sse_peer([(401, '{"error": "unauthorized"}')]) as peer:
        with pytest.raises(CommandError, match="unauthorized: pass --api-key or set ORCHESTRATOR_API_KEY"):
            tail(peer.url, "--api-key", "k-123")

    assert peer.requests[0]["authorization"] == "Bearer k-123"


def test_runs_tail_reports_an_unknown_run():
    with sse_peer([(404, '{"error": "run not found"}')]) as peer:
        with pytest.raises(CommandError, match="server answered 404: run not found"):
            tail(peer.url)


def test_runs_tail_gives_up_when_the_server_stays_unreachable():
    with sse_peer([]) as peer:
        url = peer.url  # closed when the block ends, so nothing listens there
    with pytest.raises(CommandError, match=r"giving up: the connect and 2 retries failed \("):
        tail(url, "--max-retries", "2")
    with pytest.raises(CommandError, match=r"giving up: the connect failed \("):
        tail(url, "--max-retries", "0")


def ended(status: str) -> str:
    end = {"runId": RUN_ID, "status": status, "run": run_body(status, 1)}
    return hello() + checkpoint(1) + f"id: {TS[0]}\nevent: end\ndata: {json.dumps(end)}\n\n"


@pytest.mark.parametrize(("status", "fails"), [("completed", False), ("failed", True), ("canceled", True)])
def test_runs_tail_exit_status_follows_how_the_run_ended(status, fails):
    with sse_peer([(200, ended(status))]) as peer:
        tail(peer.url)  # without --exit-status a finished run is a success
    with sse_peer([(200, ended(status))]) as peer:
        if fails:
            with pytest.raises(CommandError, match=f"run ended {status}"):
                tail(peer.url, "--exit-status")
        else:
            tail(peer.url, "--exit-status")


@pytest.mark.django_db(transaction=True)
def test_runs_tail_exit_status_of_a_finished_run_resumed_past_its_end(asgi_server):
    from runs import services

    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    services.set_run_status(run.id, "running")
    [last] = services.append_checkpoints(run.id, [{"type": "one"}])
    services.set_run_status(run.id, "failed", error={"code": "task_error", "message": "boom"})

    with pytest.raises(CommandError, match="run ended failed"):
        call_command(
            "runs_tail", str(run.id), "--url", asgi_server.url, "--last-event-id", format_ts(last.ts),
            "--exit-status", stdout=StringIO(), stderr=StringIO(),
        )  # fmt: skip


def test_runs_tail_prints_no_http_client_log_lines(tmp_path):
    import subprocess
    import sys

    from tests.servers import ROOT, process_env

    with sse_peer([(200, ended("completed"))]) as peer:
        result = subprocess.run(
            [sys.executable, "manage.py", "runs_tail", RUN_ID, "--url", peer.url],
            cwd=ROOT, env=process_env(LOG_LEVEL="INFO"), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert result.returncode == 0
    assert "HTTP Request" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith("end: completed")


def test_runs_tail_rejects_a_negative_retry_count():
    with pytest.raises(CommandError, match="--max-retries: -1 is not between 0 and 1000"):
        tail("http://127.0.0.1:9", "--max-retries", "-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "localhost:7070"], "--url: 'localhost:7070' is not an http"),
        (["--replay", "5000"], "--replay must be between 0 and 1000"),
        (["--last-event-id", "42"], "--last-event-id: '42' is not an RFC 3339 timestamp"),
    ],
)
def test_runs_tail_rejects_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        tail("http://127.0.0.1:9", *args)


@pytest.mark.django_db(transaction=True)
def test_runs_tail_against_the_server_prints_a_runs_life_and_resumes_from_a_checkpoint(asgi_server):
    from runs import services

    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    services.set_run_status(run.id, "running")
    first, second = services.append_checkpoints(run.id, [{"type": "one"}, {"type": "two", "data": {"n": 2}}])
    services.set_run_status(run.id, "completed")

    out = StringIO()
    call_command("runs_tail", str(run.id), "--url", asgi_server.url, stdout=out, stderr=StringIO())
    resumed = StringIO()
    call_command(
        "runs_tail", str(run.id), "--url", asgi_server.url, "--last-event-id", format_ts(first.ts),
        "--json", stdout=resumed, stderr=StringIO(),
    )  # fmt: skip

    lines = out.getvalue().splitlines()
    assert lines[0].endswith("run: completed")
    assert [line.split()[2] for line in lines[1:3]] == ["one", "two"]
    assert lines[3].endswith("end: completed") and len(lines) == 4
    events = [json.loads(line) for line in resumed.getvalue().splitlines()]
    assert [(e["event"], e["id"]) for e in events] == [
        ("hello", None),
        ("checkpoint", format_ts(second.ts)),
        ("end", format_ts(second.ts)),
    ]


@pytest.mark.django_db(transaction=True)
def test_runs_tail_authenticates_with_the_api_key_from_the_environment(tmp_path, monkeypatch):
    from runs import services
    from tests.servers import running_server

    run, _ = services.create_run(mode="redis", spec={"task": "sleep", "input": {}})
    services.append_checkpoints(run.id, [{"type": "one"}])
    services.cancel_run(run.id)

    with running_server(tmp_path, ORCHESTRATOR_API_KEY="ops-test-key") as server:
        assert httpx.get(f"{server.url}/runs/{run.id}").status_code == 401  # the key is required
        with pytest.raises(CommandError, match="pass --api-key or set ORCHESTRATOR_API_KEY"):
            call_command("runs_tail", str(run.id), "--url", server.url, stdout=StringIO(), stderr=StringIO())
        monkeypatch.setenv("ORCHESTRATOR_API_KEY", "ops-test-key")
        out = StringIO()
        call_command("runs_tail", str(run.id), "--url", server.url, stdout=out, stderr=StringIO())

    assert out.getvalue().splitlines()[-1].endswith("end: canceled")
