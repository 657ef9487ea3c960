"""Pieces the benchmarks share: a scratch PostgreSQL database, the server
under gunicorn with uvicorn workers, a lean HTTP/1.1 keep-alive client and
percentiles. Benchmarks print figures; they assert nothing."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(name: str) -> str:
    """Drop and create `name`, migrate it, and return its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=server_env(url), check=True,
    )  # fmt: skip
    return url


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": env.get("SECRET_KEY", "bench-only-secret"),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            # Capacity is measured here; what the guards cost, in bench/security.
            "RATE_LIMIT_MAX": env.get("RATE_LIMIT_MAX", "0"),
        }
    )
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def _status_total(self, field: str, scale: int = 1) -> int:
        total = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(f"{field}:"):
                        total += int(line.split()[1]) * scale
            except FileNotFoundError:
                continue
        return total

    def worker_cpu_seconds(self) -> dict[int, float]:
        """CPU time (user + system) each worker has used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            used[pid] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def worker_sockets(self) -> dict[int, int]:
        """Open sockets of each worker (client connections, plus a few of its own)."""
        counts = {}
        for pid in self.worker_pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except FileNotFoundError:
                continue
            total = 0
            for fd in fds:
                try:
                    total += os.readlink(fd).startswith("socket:")
                except OSError:
                    continue
            counts[pid] = total
        return counts

    def worker_threads(self) -> int:
        return self._status_total("Threads")

    def workers_rss_bytes(self) -> int:
        return self._status_total("VmRSS", 1024)


@contextmanager
def gunicorn(db_url: str, *, workers: int = 2, **extra_env: str) -> Iterator[Server]:
    """The app under gunicorn + uvicorn workers, as `make run` serves it."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "orchestrator.asgi:application",
            "-c", str(ROOT / "orchestrator" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--backlog", "4096"]  # fmt: skip
    with _serving(argv, port, server_env(db_url, **extra_env)) as server:
        yield server


@contextmanager
def granian(db_url: str, *, workers: int = 2, **extra_env: str) -> Iterator[Server]:
    """The app under granian's ASGI interface on uvloop, to compare servers;
    granian must be installed beside the requirements (it is not one of them).
    Unlike gunicorn.conf.py it leaves the garbage collector's settings alone.
    Each event stream is a request, hence no cap on concurrent requests."""
    import tempfile

    port = free_port()
    env = server_env(db_url, **extra_env)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="orchestrator-metrics-"))
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--backlog", "4096",
            "--backpressure", "100000", "--no-access-log", "orchestrator.asgi:application"]  # fmt: skip
    with _serving(argv, port, env) as server:
        yield server


SERVERS = {"uvicorn": gunicorn, "granian": granian}


@contextmanager
def _serving(argv: list[str], port: int, env: dict[str, str]) -> Iterator[Server]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = Server(f"http://127.0.0.1:{port}", port, proc)
    try:
        _wait_healthy(port, proc)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not become healthy")


class Connection:
    """One keep-alive HTTP/1.1 connection; lean enough that the client is not the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Content-Length: {len(payload)}",
        ]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        raw = (
            await self._read_chunked()
            if chunked
            else (await self.reader.readexactly(length) if length else b"")
        )
        return status, (json.loads(raw) if raw else None)

    async def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self) -> None:
        self.writer.close()


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def latency_summary(latencies: list[float]) -> str:
    values = sorted(latencies)
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms, "
        f"max {values[-1] * 1000:.1f} ms"
    )
