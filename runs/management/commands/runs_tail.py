"""Follow a run's event stream from a running server, in the terminal."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from httpx_sse import ServerSentEvent, SSEError, connect_sse

from runs.management import options, render
from runs.management.base import OrchestratorCommand

DEFAULT_RETRY_MS = 1000
# The server sends a keep-alive at least every 15 s; silence for longer than
# this means the connection is dead even if TCP has not noticed.
READ_TIMEOUT_SECONDS = 45.0


class StreamEnded(Exception):
    """The run is final and every event was printed."""


class Command(OrchestratorCommand):
    help = (
        "Print a run's event stream (GET /runs/{id}/events) as it happens: its checkpoints "
        "and status changes, until the run ends. Reconnects after a dropped connection and "
        "resumes with Last-Event-ID, so no checkpoint is missed or printed twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", help="the run's id (UUID)")
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{settings.PORT}",
            help="base URL of the running server (default: %(default)s)",
        )
        parser.add_argument(
            "--api-key",
            default=os.environ.get("ORCHESTRATOR_API_KEY", ""),
            help="API key when the server requires one (default: $ORCHESTRATOR_API_KEY)",
        )
        parser.add_argument(
            "--replay", type=int, default=10, metavar="N", help="earlier checkpoints to print first (0..1000)"
        )
        parser.add_argument(
            "--last-event-id", metavar="TS", help="resume after this checkpoint ts instead of replaying"
        )
        parser.add_argument(
            "--max-retries",
            type=int,
            default=10,
            help="reconnects tried after a failed connect before giving up, 0..1000 (default 10)",
        )
        parser.add_argument("--json", action="store_true", help="one JSON object per event")
        parser.add_argument(
            "--exit-status",
            action="store_true",
            help="exit 1 when the run ends failed or canceled (0 when it completed)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        run_id = options.run_id(opts["run_id"])
        if not 0 <= opts["replay"] <= 1000:
            raise CommandError("--replay must be between 0 and 1000")
        options.int_between("--max-retries", opts["max_retries"], 0, 1000)
        options.timestamp("--last-event-id", opts["last_event_id"])
        if not opts["url"].startswith(("http://", "https://")):
            raise CommandError(f"--url: {opts['url']!r} is not an http(s) URL")
        self.json_output = opts["json"]
        self.last_event_id: str | None = opts["last_event_id"]
        self.retry_ms = DEFAULT_RETRY_MS
        self.connected_before = False
        self.hello_seen = False
        self.final_status: str | None = None
        run_url = f"{opts['url'].rstrip('/')}/runs/{run_id}"
        url = f"{run_url}/events"
        headers = {"Authorization": f"Bearer {opts['api_key']}"} if opts["api_key"] else {}
        failures = 0
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_SECONDS)
        try:
            with httpx.Client(timeout=timeout, headers=headers) as client:
                while True:
                    try:
                        self.follow(client, url, opts["replay"])
                        failures = 0  # a clean close after a good connect: resume at once
                    except (httpx.TransportError, SSEError) as exc:
                        failures += 1
                        if failures > opts["max_retries"]:
                            raise CommandError(self.giving_up(failures - 1, exc)) from None
                        self.stderr.write(f"connection lost ({exc}); reconnecting in {self.retry_ms} ms")
                    time.sleep(self.retry_ms / 1000)  # the server's `retry:` pacing, not a sync wait
        except StreamEnded:
            pass
        except KeyboardInterrupt:
            return
        if opts["exit_status"]:
            self.exit_on_status(headers, run_url, timeout)

    @staticmethod
    def giving_up(retries: int, exc: Exception) -> str:
        tried = "the connect" if retries == 0 else f"the connect and {retries} retries"
        return f"giving up: {tried} failed ({exc})"

    def exit_on_status(self, headers: dict[str, str], run_url: str, timeout: httpx.Timeout) -> None:
        """--exit-status: a CommandError (exit 1) unless the run completed."""
        status = self.final_status
        if status is None:  # resumed a finished run with nothing newer: ask the run itself
            try:
                response = httpx.get(run_url, headers=headers, timeout=timeout)
                self.check_status(response)
                status = response.json()["run"]["status"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise CommandError(f"the run's final status is unknown: {exc}") from None
        if status != "completed":
            raise CommandError(f"run ended {status}")

    def follow(self, client: httpx.Client, url: str, replay: int) -> None:
        """One connection: print its events; return when the server closes it."""
        request_headers = {}
        params = {}
        if self.last_event_id:
            request_headers["Last-Event-ID"] = self.last_event_id
        else:
            params["replay"] = str(replay)
        with connect_sse(client, "GET", url, headers=request_headers, params=params) as source:
            self.check_status(source.response)
            if self.connected_before:
                self.stderr.write(f"reconnected; resuming after {self.last_event_id or 'the start'}")
            self.connected_before = True
            for event in source.iter_sse():
                self.on_event(event)

    def check_status(self, response: httpx.Response) -> None:
        if response.status_code == 204:
            raise StreamEnded()  # resumed a finished run with nothing newer
        if response.status_code == 200:
            return
        response.read()
        try:
            message = response.json().get("error", response.reason_phrase)
        except (ValueError, AttributeError):
            message = response.reason_phrase
        if response.status_code in (401, 403):
            raise CommandError(f"{message}: pass --api-key or set ORCHESTRATOR_API_KEY")
        if response.status_code < 500 and response.status_code != 429:
            raise CommandError(f"server answered {response.status_code}: {message}")
        raise httpx.TransportError(f"server answered {response.status_code}: {message}")

    def on_event(self, event: ServerSentEvent) -> None:
        if event.retry is not None:
            self.retry_ms = event.retry
        if not event.data:
            return
        try:
            body = event.json()
        except ValueError:
            self.stderr.write(f"skipping a {event.event} event whose data is not JSON")
            return
        if event.event in ("checkpoint", "end") and event.id:
            if event.event == "checkpoint" and self.last_event_id and event.id <= self.last_event_id:
                return  # already printed before a reconnect
            self.last_event_id = event.id
        if self.json_output:
            self.stdout.write(json.dumps({"event": event.event, "id": event.id or None, "data": body}))
        elif event.event == "checkpoint":
            self.stdout.write(render.checkpoint_line(body))
        elif event.event == "hello" and not self.hello_seen:
            self.hello_seen = True
            self.stdout.write(render.status_line("run", body))
        elif event.event in ("status", "end"):
            self.stdout.write(render.status_line(event.event, body))
        if event.event == "end":
            self.final_status = body.get("status") or (body.get("run") or {}).get("status")
            raise StreamEnded()
