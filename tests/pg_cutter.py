"""A TCP proxy in front of PostgreSQL that makes commits ambiguous: now and
then it drops the connection just after the server committed a checkpoint
append and before the client hears so, as a lost network or a killed proxy
would. The client cannot tell whether its write was stored.

An append is known by its text, or, once its statement is prepared on the
connection, by the name it is run with."""

from __future__ import annotations

import re
import socket
import struct
import threading
from contextlib import suppress

_APPEND = b"INSERT INTO runs_checkpoint"
# A Parse message naming the statement it prepares, then its text; a Bind of
# the unnamed portal to a prepared statement.
_PARSE_APPEND = re.compile(rb"(_pg3_\d+)\x00[^\x00]*" + _APPEND)
_BIND = re.compile(rb"B[\s\S]{4}\x00(_pg3_\d+)\x00")


class CommitCutter:
    """Listens on 127.0.0.1:`port`, forwards to `upstream`; drops every
    `every`-th COMMIT of a transaction that appended checkpoints."""

    def __init__(self, upstream: tuple[str, int], every: int) -> None:
        self.upstream = upstream
        self.every = every
        self.cuts = 0
        self._commits = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def __enter__(self) -> CommitCutter:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            armed = threading.Event()  # this connection's open transaction appended checkpoints
            threading.Thread(target=self._client_to_server, args=(client, server, armed), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client, armed), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket, armed: threading.Event) -> None:
        tail = b""
        prepared: set[bytes] = set()  # names of the statements prepared on this connection that append
        try:
            while chunk := client.recv(65536):
                seen = tail + chunk
                if _APPEND in seen:
                    armed.set()
                    prepared.update(found.group(1) for found in _PARSE_APPEND.finditer(seen))
                elif any(found.group(1) in prepared for found in _BIND.finditer(seen)):
                    armed.set()  # a prepared append runs again: only its name is sent
                tail = chunk[-4096:]
                server.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _server_to_client(self, server: socket.socket, client: socket.socket, armed: threading.Event) -> None:
        buffer = b""
        try:
            while chunk := server.recv(65536):
                buffer += chunk
                out = b""
                # Whole messages only: type byte, then a length that counts itself.
                while len(buffer) >= 5:
                    length = struct.unpack("!I", buffer[1:5])[0]
                    if len(buffer) < 1 + length:
                        break
                    message, buffer = buffer[: 1 + length], buffer[1 + length :]
                    if message[:1] == b"C" and message[5:].startswith(b"COMMIT") and armed.is_set():
                        armed.clear()
                        if self._cut_this_one():
                            client.sendall(out)
                            _close(client, server)  # committed, and the client never hears it
                            return
                    out += message
                client.sendall(out)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _cut_this_one(self) -> bool:
        with self._lock:
            self._commits += 1
            if self._commits % self.every:
                return False
            self.cuts += 1
            return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()
