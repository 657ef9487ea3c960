"""Bodies no client may send, enforced at the server's edge over real HTTP:
nothing oversized is read into memory or spooled to disk."""

from __future__ import annotations

import socket

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in data:
                break
        return b"".join(chunks)


def test_a_declared_oversized_body_is_refused_before_it_is_sent(asgi_server):
    head = (
        "POST /runs?mode=redis HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024**3}\r\n"
    )

    # Only the headers travel; the answer comes without waiting for 10 GiB.
    answer = raw_request(asgi_server.url, head)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code": "body_too_large"' in answer
    assert b"x-request-id" in answer.lower()


def test_a_refused_body_is_answered_like_any_other_request(asgi_server):
    """A browser can read the 413 (CORS headers), and it is logged with its request id."""
    head = (
        "POST /runs?mode=redis HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Origin: https://app.example\r\nX-Request-ID: refused-1\r\n"
        f"Content-Length: {10 * 1024**3}\r\n"
    )

    answer = raw_request(asgi_server.url, head).lower()

    assert answer.startswith(b"http/1.1 413"), answer[:200]
    assert b"access-control-allow-origin: *" in answer
    assert b"x-request-id: refused-1" in answer
    assert b"connection: close" in answer
    logged = [line for line in asgi_server.log(tail=None).splitlines() if "refused-1" in line]
    assert any("POST /runs 413" in line for line in logged), logged


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(asgi_server):
    def endless():
        yield b'{"spec": {"task": "sleep", "input": {"pad": "'
        for _ in range(10_000):
            yield b"x" * 65536

    try:
        response = httpx.post(
            f"{asgi_server.url}/runs?mode=redis",
            content=endless(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    except httpx.WriteError:
        pytest.fail("the server should answer 413, not drop the connection mid-body")
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert response.headers["Connection"] == "close"


def test_a_chunked_body_within_the_limit_is_read_whole(asgi_server):
    def pieces():
        yield b'{"spec": {"task": "sleep", '
        yield b'"input": {"seconds": 3}}, "metadata": {"via": "chunks"}}'

    response = httpx.post(
        f"{asgi_server.url}/runs?mode=redis", content=pieces(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
    run = response.json()["run"]
    assert run["spec"]["input"] == {"seconds": 3}
    assert run["metadata"] == {"via": "chunks"}


def test_a_malformed_content_length_is_400(asgi_server):
    head = "POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12abc\r\n"

    answer = raw_request(asgi_server.url, head)

    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_a_refused_body_without_credentials_is_a_401_that_closes_the_connection(keyed_server):
    """The key check answers first; the unread body still ends the connection."""
    head = (
        "POST /runs?mode=redis HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024**3}\r\n"
    )

    answer = raw_request(keyed_server.url, head).lower()

    assert answer.startswith(b"http/1.1 401"), answer[:200]
    assert b"connection: close" in answer


@pytest.mark.django_db
def test_allowed_hosts_is_enforced_on_api_paths_and_not_on_the_probes(client, settings):
    settings.ALLOWED_HOSTS = ["api.example"]

    refused = client.get("/runs", headers={"Host": "evil.example"})
    served = client.get("/runs", headers={"Host": "api.example"})
    health = client.get("/health", headers={"Host": "10.1.2.3"})

    assert refused.status_code == 400
    assert refused.json()["code"] == "disallowed_host"
    assert served.status_code == 200
    assert health.status_code == 200
