"""What the event-stream benchmarks share: a scratch PostgreSQL database, the
server under gunicorn with 2 uvicorn workers, a lean raw-socket SSE client,
a paced checkpoint writer in its own process, and server-side samplers
(worker RSS, PostgreSQL connections). Benchmarks print figures; they assert
nothing."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: F401 - re-exported for the stream benchmarks
    PG_ADMIN_URL,
    ROOT,
    Server,
    database_url,
    drop_database,
    free_port,
    fresh_database,
    gunicorn,
    latency_summary,
    percentile,
    server_env,
)


def raise_fd_limit(wanted: int = 16384) -> None:
    """Thousands of sockets on each side; children (the server) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def create_runs(url: str, count: int) -> list[str]:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        ids = []
        for _ in range(count):
            response = client.post("/runs?mode=redis", json={"spec": {"task": "sleep", "input": {}}})
            response.raise_for_status()
            ids.append(response.json()["runId"])
            client.patch(f"/runs/{ids[-1]}", json={"status": "running"}).raise_for_status()
        return ids


def pg_connections(db_name: str, application_name: str | None = None) -> int:
    """Server connections to the benchmark database (this sampler's own excluded);
    only those of one server when it was started with PGAPPNAME=`application_name`."""
    with connect_retrying(PG_ADMIN_URL) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND (%s::text IS NULL OR application_name = %s::text)",
            [db_name, application_name, application_name],
        ).fetchone()
        return int(row[0]) if row else 0


def connect_retrying(url: str, attempts: int = 40) -> Any:
    """A psycopg connection; a PostgreSQL shared with other work may be out of
    connection slots for a moment."""
    import psycopg

    for attempt in range(attempts):
        try:
            return psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


class ConnectionSampler:
    """Highest number of server connections to the database seen while running."""

    def __init__(self, db_name: str, every: float = 0.25, application_name: str | None = None) -> None:
        self.db_name, self.every, self.peak = db_name, every, 0
        self.application_name = application_name
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            count = await asyncio.to_thread(pg_connections, self.db_name, self.application_name)
            self.peak = max(self.peak, count)
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        if self._task:
            self._task.cancel()
        return self.peak


# --- a lean SSE subscriber over a raw socket --------------------------------
@dataclass
class Subscriber:
    run_id: str
    port: int
    replay: int = 0
    last_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    status: int | None = None
    on_checkpoint: Callable[[Subscriber, int], None] | None = None
    _writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        """One connection: read until the server closes it or `drop()` is called."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer = writer
        headers = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        writer.write(
            f"GET /runs/{self.run_id}/events?replay={self.replay} HTTP/1.1\r\nHost: bench\r\n"
            f"Accept: text/event-stream\r\n{headers}\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200:
                self.hello.set()
                return
            buffer = b""
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.strip().split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    return
                buffer += chunk[:-2]
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    self._event(block)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _event(self, block: bytes) -> None:
        name = event_id = data = None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:]
            elif line.startswith(b"id: "):
                event_id = line[4:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if name == b"checkpoint" and data is not None:
            body = json.loads(data)
            self.seqs.append(body["seq"])
            sent = (body.get("data") or {}).get("sent")
            if sent:
                self.latencies.append(time.time() - sent)
            self.last_id = event_id
            if self.on_checkpoint:
                self.on_checkpoint(self, body["seq"])
        elif name == b"hello":
            self.hello.set()
        elif name == b"end":
            self.ended = True
            self.last_id = event_id

    def drop(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()


def lost_and_duplicates(seqs: list[int], expected: int) -> tuple[int, int]:
    unique = set(seqs)
    lost = len(set(range(1, expected + 1)) - unique)
    return lost, len(seqs) - len(unique)


# --- a paced writer in its own process ---------------------------------------
def _writer_main(port: int, run_ids: list[str], rate: float, seconds: float, out: Any) -> None:
    import httpx

    async def main() -> dict[str, Any]:
        counts = dict.fromkeys(run_ids, 0)
        post_latency: list[float] = []
        failures = 0
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as client:
            inflight: set[asyncio.Task[None]] = set()

            async def post(run_id: str) -> None:
                nonlocal failures
                started = time.time()
                response = await client.post(
                    f"/runs/{run_id}/checkpoints", json={"type": "tick", "data": {"sent": started}}
                )
                post_latency.append(time.time() - started)
                if response.status_code == 201:
                    counts[run_id] += 1
                else:
                    failures += 1

            total = int(rate * seconds)
            start = time.monotonic()
            for i in range(total):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(post(run_ids[i % len(run_ids)]))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            await asyncio.gather(*inflight)
        return {"counts": counts, "postLatency": sorted(post_latency), "failures": failures}

    out.send(asyncio.run(main()))


class PacedWriter:
    """Appends `rate` checkpoints/s round-robin over the runs, from another process."""

    def __init__(self, port: int, run_ids: list[str], rate: float, seconds: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_writer_main, args=(port, run_ids, rate, seconds, send))

    def start(self) -> None:
        self._proc.start()

    async def result(self) -> dict[str, Any]:
        result = await asyncio.to_thread(self._recv.recv)
        self._proc.join()
        return result
