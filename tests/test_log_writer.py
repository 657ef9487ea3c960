"""Log lines are formatted and written off the caller's thread, and none is lost:
not when the writer lags, not at SIGTERM, not in a forked child."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import threading
import time

import httpx
import pytest

from orchestrator.logging import BackgroundStreamHandler, JSONFormatter
from tests.servers import ROOT, ServerProcess, free_port, process_env


class SlowStream(io.StringIO):
    """A stream that takes its time, like a pipe whose reader lags."""

    def write(self, text: str) -> int:
        time.sleep(0.001)
        return super().write(text)


class ThreadNoting(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(message)s")
        self.threads: set[int] = set()

    def format(self, record: logging.LogRecord) -> str:
        self.threads.add(threading.get_ident())
        return super().format(record)


def a_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.log_writer.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_lines_are_formatted_off_the_callers_thread_and_all_written_by_close():
    stream = SlowStream()
    handler = BackgroundStreamHandler(stream)
    formatter = ThreadNoting()
    handler.setFormatter(formatter)
    logger = a_logger(handler)

    for n in range(300):
        logger.info("line %d", n)
    handler.close()

    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(300)]
    assert threading.get_ident() not in formatter.threads


def test_flush_waits_for_what_was_logged_before_it():
    stream = SlowStream()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = a_logger(handler)

    for n in range(50):
        logger.info("line %d", n, extra={"n": n})
    handler.flush()

    assert len(stream.getvalue().splitlines()) == 50
    handler.close()


def test_the_message_is_rendered_when_logged_not_when_written():
    stream = SlowStream()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = a_logger(handler)
    changing = ["before"]

    logger.info("%s", changing)
    changing[0] = "after"
    handler.close()

    assert stream.getvalue() == "['before']\n"


def test_a_forked_child_writes_its_lines_too():
    read_end, write_end = os.pipe()
    handler = BackgroundStreamHandler(os.fdopen(write_end, "w"))
    handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
    logger = a_logger(handler)

    pid = os.fork()
    if pid == 0:  # the child: its own listener thread, drained at exit
        try:
            for n in range(20):
                logger.info("child %d", n)
            handler.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    handler.close()
    handler.target.stream.close()  # the pipe's last writer: the read below ends
    with os.fdopen(read_end) as pipe:
        lines = pipe.read().splitlines()

    assert [line.split(" ", 1)[1] for line in lines] == [f"child {n}" for n in range(20)]


@pytest.mark.django_db(transaction=True)
def test_no_access_line_is_lost_when_the_server_is_stopped(tmp_path):
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "orchestrator.asgi:application",
        "-c", str(ROOT / "orchestrator" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "1",
    ]  # fmt: skip
    server = ServerProcess(argv, port, process_env(LOG_FORMAT="json"), tmp_path / "server.log").start()

    async def requests() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as http:
            answers = await asyncio.gather(*(http.get(f"{server.url}/missing/{n}") for n in range(400)))
        return [answer.status_code for answer in answers]

    try:
        assert set(asyncio.run(requests())) == {404}
    finally:
        # At once, while lines may still be queued for the writer.
        assert server.stop(signal.SIGTERM) == 0
    logged = server.log(tail=None)

    assert {n for n in range(400) if f'"path": "/missing/{n}"' in logged} == set(range(400))
