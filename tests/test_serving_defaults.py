"""Safe defaults of `make run` and the image's gunicorn: loopback unless told
otherwise, no unauthenticated service on the network, no second server
sharing a port, no control socket shared between unrelated servers."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, ServerProcess, free_port, process_env, stop_process_group

pytestmark = pytest.mark.django_db(transaction=True)


def gunicorn(*bind: str) -> list[str]:
    argv = [
        sys.executable, "-m", "gunicorn", "orchestrator.asgi:application",
        "-c", str(ROOT / "orchestrator" / "gunicorn.conf.py"), "--workers", "1",
    ]  # fmt: skip
    for address in bind:
        argv += ["--bind", address]
    return argv


def env(**extra: str) -> dict[str, str]:
    values = process_env(**extra)
    for name in ("ORCHESTRATOR_API_KEY", "ALLOW_UNAUTHENTICATED", "HOST"):
        if name not in extra:
            values.pop(name, None)
    return values


def refused(argv: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def test_make_run_serves_on_loopback_unless_host_says_otherwise():
    default = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True)
    chosen = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert "--bind 127.0.0.1:7070" in default.stdout
    assert "--bind 0.0.0.0:7070" in chosen.stdout


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
    return found


def test_the_gunicorn_settings_alone_bind_loopback(tmp_path):
    port = free_port()
    server = ServerProcess(gunicorn(), port, env(PORT=str(port)), tmp_path / "server.log").start()
    try:
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.stop()


def test_a_network_address_without_an_api_key_refuses_to_start():
    result = refused(gunicorn(f"0.0.0.0:{free_port()}"), env())

    assert result.returncode != 0
    assert "refusing to serve 0.0.0.0 without ORCHESTRATOR_API_KEY" in result.stderr
    assert "ALLOW_UNAUTHENTICATED=true" in result.stderr


def test_allow_unauthenticated_lets_it_start_on_the_network(tmp_path):
    port = free_port()
    argv = gunicorn(f"0.0.0.0:{port}")
    server = ServerProcess(argv, port, env(ALLOW_UNAUTHENTICATED="true"), tmp_path / "server.log").start()
    try:
        assert "without an API key (ALLOW_UNAUTHENTICATED=true)" in server.log()
    finally:
        server.stop()


def test_a_second_server_on_a_port_in_use_exits_naming_the_port(tmp_path):
    port = free_port()
    first = ServerProcess(gunicorn(f"127.0.0.1:{port}"), port, env(), tmp_path / "first.log").start()
    try:
        second = refused(gunicorn(f"127.0.0.1:{port}"), env())

        assert second.returncode != 0
        assert f"port {port} is in use" in second.stderr
        assert httpx.get(f"{first.url}/health").status_code == 200
    finally:
        first.stop()


def test_no_control_socket_is_shared_by_unrelated_servers(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    environment = env(HOME=str(home))
    environment.pop("XDG_RUNTIME_DIR", None)
    server = ServerProcess(gunicorn(f"127.0.0.1:{port}"), port, environment, tmp_path / "server.log")
    server.start()
    try:
        assert not (home / ".gunicorn").exists()
    finally:
        stop_process_group(server.proc)
