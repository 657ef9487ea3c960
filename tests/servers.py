"""Real server processes for tests that need real HTTP: uvicorn or gunicorn
serving the ASGI app, or `manage.py` commands, all pointed at the test
database that pytest-django created, so what a test writes they see."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL of the test database (pytest-django renamed it to test_*)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": settings.SECRET_KEY,
            "REDIS_URL": settings.REDIS_URL,
            "LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
            # Limits off unless a test sets them (RATE_LIMIT_MAX=...).
            "RATE_LIMIT_MAX": "0",
            "RATE_LIMIT_WORKER_MAX": "0",
        }
    )
    env.update(extra)
    return env


class ServerProcess:
    """A child process serving HTTP on 127.0.0.1:`port`; logs go to a file."""

    def __init__(self, argv: Sequence[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.port = port
        # Names its database connections, so a test can cut exactly this server's.
        self.db_application_name = env.setdefault("DB_APPLICATION_NAME", f"orchestrator-test-{port}")
        self.env = env
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False  # not listening yet: a refused connect is the poll's "not yet"

        try:
            wait_for(ready, timeout, what="the server's /health", interval=0.05)
        except AssertionError:
            raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}") from None

    def log(self, tail: int | None = 5000) -> str:
        """What the server wrote, the last `tail` characters of it (None: all of it)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if tail is None else text[-tail:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        return stop_process_group(self.proc, sig, timeout)


def terminate_connections(application_name: str, *, listening_only: bool = False) -> int:
    """What a PostgreSQL restart does to a process: every connection it holds
    (those named `application_name` in the test database; only its LISTEN
    connection with `listening_only`) is ended. How many were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s"
            " AND (NOT %s OR query LIKE 'LISTEN%%')",
            [application_name, listening_only],
        )
        return cursor.fetchone()[0]


def stop_process_group(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int | None:
    """Signal a child started with start_new_session and all it started; SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)


APP = "orchestrator.asgi:application"


def uvicorn_argv(port: int, app: str = APP) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip


def gunicorn_argv(port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "orchestrator.asgi:application",
        "-c", str(ROOT / "orchestrator" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
    ]  # fmt: skip


@contextmanager
def running_server(
    tmp_path: Path, *, gunicorn_workers: int | None = None, app: str = APP, **env: str
) -> Iterator[ServerProcess]:
    """Serve the app (uvicorn, or gunicorn with workers) in a child process for the block."""
    port = free_port()
    argv = gunicorn_argv(port, gunicorn_workers) if gunicorn_workers else uvicorn_argv(port, app)
    server = ServerProcess(argv, port, process_env(**env), tmp_path / f"server-{port}.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
