"""The deliverer's HTTP client: httpcore with a network backend that
connects only to addresses `webhooks.urlguard` has checked.

The check sits where the connection is made: the host is resolved once, each
address is judged, and the socket is opened to that very address, so a DNS
answer cannot change between the check and the connect. TLS still verifies
the certificate against the URL's host name. Redirects are never followed
(httpcore does not follow them), no proxy from the environment is used, and
a keep-alive connection is reused only for the host it was checked for.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import certifi
import httpcore

from webhooks import urlguard

# Enough of a receiver's answer to end the exchange; the rest is not read.
MAX_RESPONSE_BYTES = 64 * 1024


class CheckedNetworkBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = urlguard.resolve(host.strip("[]"), port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address
        raise failure


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: a response status, or why there was none."""

    status: int | None
    error: str
    kind: str  # succeeded | gone | http_error | timeout | network_error | refused
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.kind == "succeeded"


def new_pool(connections: int) -> httpcore.ConnectionPool:
    return httpcore.ConnectionPool(
        ssl_context=ssl.create_default_context(cafile=certifi.where()),
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=30.0,
        network_backend=CheckedNetworkBackend(),
    )


def _kind_of(status: int) -> str:
    if 200 <= status < 300:
        return "succeeded"
    if status == 410:
        return "gone"
    return "http_error"


def post(
    pool: httpcore.ConnectionPool, url: str, headers: dict[str, str], body: bytes, timeout: float
) -> Outcome:
    """POST `body` to `url`; every phase (connect, write, each read) is bounded by `timeout`."""
    started = time.monotonic()
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    try:
        with pool.stream(
            "POST",
            url,
            headers=[*headers.items(), ("content-length", str(len(body)))],
            content=body,
            extensions={"timeout": limits},
        ) as response:
            received = 0
            for chunk in response.iter_stream():
                received += len(chunk)
                if received > MAX_RESPONSE_BYTES or time.monotonic() - started > timeout:
                    break
            status = response.status
    except urlguard.UnsafeDestination as refused:
        return Outcome(None, f"refused: {refused.reason}", "refused", time.monotonic() - started)
    except httpcore.TimeoutException:
        return Outcome(None, f"no answer within {timeout:g}s", "timeout", time.monotonic() - started)
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
        return Outcome(
            None, f"{exc.__class__.__name__}: {exc}"[:300], "network_error", time.monotonic() - started
        )
    elapsed = time.monotonic() - started
    kind = _kind_of(status)
    return Outcome(status, "" if kind == "succeeded" else f"HTTP {status}", kind, elapsed)
