"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records every
request and answers as the test scripts it (a status, a delay, a hang)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 204
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Set by the test to let a held request answer; None answers at once.
    release: threading.Event | None = None


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Answer] = []  # answers for the next requests, in order
        self.default = Answer()
        self.arrived = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer_next(self, *answers: Answer) -> None:
        with self.arrived:
            self.script.extend(answers)

    def _next_answer(self) -> Answer:
        with self.arrived:
            return self.script.pop(0) if self.script else self.default

    def record(self, received: Received) -> None:
        with self.arrived:
            self.requests.append(received)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0, path: str | None = None) -> list[Received]:
        """Block until `count` requests (to `path`, when given) arrived; return them."""

        def matching() -> list[Received]:
            return [r for r in self.requests if path is None or r.path == path]

        with self.arrived:
            if not self.arrived.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"{len(matching())} requests arrived, not {count}, in {timeout}s")
            return matching()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                answer = receiver._next_answer()
                receiver.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if answer.release is not None:
                    answer.release.wait(30)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the deliverer gave up on us (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            with self.arrived:
                for answer in self.script:
                    if answer.release is not None:
                        answer.release.set()
            self._server.shutdown()
            self._server.server_close()
