"""The app answers over real HTTP from its own process, against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_created_over_http_is_visible_to_the_test(asgi_server):
    from runs.models import Run

    response = httpx.post(f"{asgi_server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}})

    assert response.status_code == 201
    assert Run.objects.filter(pk=response.json()["runId"]).exists()


def _tcp_sockets(port: int) -> list[tuple[str, int]]:
    """(state, inode) of every socket whose local port is `port` (01 established, 0A listening)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.append((fields[3], int(fields[9])))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_gunicorn_workers_each_listen_and_share_the_connections(tmp_path):
    """On one shared socket, the worker that wakes first takes a whole burst of
    connections, and keep-alive clients stay where they landed."""
    from tests.servers import running_server
    from tests.waiting import wait_for

    with running_server(tmp_path, gunicorn_workers=2) as server:
        assert server.proc is not None

        def listening_sockets() -> list[int] | None:
            inodes = [inode for state, inode in _tcp_sockets(server.port) if state == "0A"]
            return inodes if len(inodes) == 2 else None

        listening = wait_for(listening_sockets, 10, what="a listening socket per worker")
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
        try:
            for client in clients:  # answered, so accepted by a worker
                client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(65536).startswith(b"HTTP/1.1 200")
            children = subprocess.check_output(["ps", "-o", "pid=", "--ppid", str(server.proc.pid)])
            workers = [int(pid) for pid in children.split()]
            established = {inode for state, inode in _tcp_sockets(server.port) if state == "01"}
            held = [len(_socket_inodes(pid) & established) for pid in workers]
        finally:
            for client in clients:
                client.close()

    assert len(listening) == 2
    assert sorted(held) != [0, 40] and sum(held) == 40, held
