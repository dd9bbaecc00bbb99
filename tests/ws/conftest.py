"""Fixtures: a private reactor in a thread, a test-only WebSocket/SSE service,
fake transports and raw-socket helpers.

The ``ws-test`` service drives the connection layer without the HTTP server:
its protocol reads one request head, answers with the handshake helpers and
hands the transport over with ``upgrade(...)``, the same contract the HTTP
layer follows. Frames and connection behaviour are tested through it in
isolation; ``test_asgi_*`` and ``test_wsgi_upgrade`` go through the real
HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iodine import CloseReason, Reactor, register_service
from iodine.http import sse
from iodine.http.websocket import connection, handshake
from tests.core.conftest import Runner, recv_exactly, wait_for
from tests.http.conftest import Server

__all__ = ["Recorder", "Runner", "ServerPool", "recv_exactly", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]

MAX_HEAD = 16 * 1024


class HandshakeProtocol(asyncio.Protocol):
    """Reads a request head, then upgrades to WebSocket or SSE."""

    def __init__(self, reactor: Reactor, handler: object, options: dict[str, Any]):
        self.reactor = reactor
        self.handler = handler
        self.options = options
        self.received = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        end = self.received.find(b"\r\n\r\n")
        if end < 0:
            if len(self.received) > MAX_HEAD:
                self.transport.close()
            return
        head, leftover = bytes(self.received[:end]), bytes(self.received[end + 4 :])
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].split(b" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        scope = {"path": target.decode(), "headers": headers}

        if sse.is_event_stream_request(headers):
            self.transport.write(sse.response_head([("x-test", "sse")]))
            sse.upgrade(
                self.reactor,
                self.transport,
                self.handler,
                scope,
                leftover,
                ping=self.options.get("ping", sse.DEFAULT_PING),
                last_event_id=sse.last_event_id(headers),
            )
            return
        try:
            request = handshake.check_request(method, headers)
        except handshake.HandshakeError as exc:
            self.transport.write(exc.response)
            self.transport.close()
            return
        chosen = handshake.choose_subprotocol(
            request.subprotocols, self.options.get("subprotocols", ())
        )
        self.transport.write(
            handshake.accept_response(request.key, chosen, [("x-test", "ws")])
        )
        connection.upgrade(
            self.reactor,
            self.transport,
            self.handler,
            scope,
            leftover,
            max_message=self.options.get("max_message", connection.DEFAULT_MAX_MESSAGE),
            ping=self.options.get("ping", connection.DEFAULT_PING),
            subprotocol=chosen,
        )


def ws_test_service(
    reactor: Reactor, handler: object, options: dict[str, Any]
) -> Callable[[], asyncio.BaseProtocol]:
    return lambda: HandshakeProtocol(reactor, handler, options)


register_service("ws-test", ws_test_service)


class Recorder:
    """A handler that records its callbacks and echoes messages if asked."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.events: list[tuple[str, Any]] = []
        self.conn: Any = None
        self.opened = threading.Event()
        self.closed = threading.Event()

    def on_open(self, conn: Any) -> None:
        self.conn = conn
        self.events.append(("open", None))
        self.opened.set()

    def on_message(self, conn: Any, data: Any) -> None:
        self.events.append(("message", data))
        if self.echo:
            conn.write(data)

    def on_shutdown(self, conn: Any) -> None:
        self.events.append(("shutdown", None))

    def on_close(self, conn: Any, reason: CloseReason) -> None:
        self.conn = conn
        self.events.append(("close", reason))
        self.closed.set()

    def messages(self) -> list[Any]:
        return [data for kind, data in self.events if kind == "message"]

    def close_reason(self) -> CloseReason:
        assert self.closed.wait(10), "on_close was not called"
        reason: CloseReason = next(a for kind, a in self.events if kind == "close")
        return reason


@pytest.fixture
def reactor() -> Reactor:
    reactor = Reactor()
    reactor.settings.shutdown_timeout = 3
    return reactor


@pytest.fixture
def runner(reactor: Reactor) -> Iterator[Runner]:
    runner = Runner(reactor)
    try:
        yield runner
    finally:
        runner.stop()


def open_socket(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_head(sock: socket.socket) -> bytes:
    """Read an HTTP response head (through the blank line) byte by byte."""
    sock.settimeout(5)
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"closed after {bytes(head)!r}")
        head += chunk
    return bytes(head)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (first byte, payload)."""
    first, second = recv_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(recv_exactly(sock, 2), "big")
    elif size == 127:
        size = int.from_bytes(recv_exactly(sock, 8), "big")
    return first, recv_exactly(sock, size) if size else b""


def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def handshake_request(path: str = "/", extra: bytes = b"") -> tuple[bytes, bytes]:
    key = handshake.new_key()
    request = (
        b"GET " + path.encode() + b" HTTP/1.1\r\nhost: localhost\r\n"
        b"upgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-key: "
        + key
        + b"\r\nsec-websocket-version: 13\r\n"
        + extra
        + b"\r\n"
    )
    return request, key


def deflate_answer(request: bytes, extensions: bytes) -> bytes:
    """A server's ``101`` to a client's opening ``request``, choosing
    ``extensions``: what a hand-written server says to test the client."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
        b"Sec-WebSocket-Extensions: %s\r\n\r\n"
        % (handshake.accept_key(key).encode(), extensions)
    )


def start_server(
    app: str, log: Path, env: dict[str, str] | None = None, **options: Any
) -> Server:
    """A real HTTP server of ``app`` (``module:attr`` under ``tests``) on
    127.0.0.1, in its own process, with ``env`` added to its environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(ROOT))
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        return Server(app, {"address": "127.0.0.1", **options}, log)


class ServerPool:
    """Servers shared by a module's tests: one per app and options, started
    on first use (again if it died) and stopped with the pool."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, Server] = {}

    def get(self, app: str, **options: Any) -> Server:
        key = app + json.dumps(options, sort_keys=True)
        server = self.running.get(key)
        if server is None or server.proc.poll() is not None:
            log = self.folder / f"server-{len(self.running)}.log"
            server = self.running[key] = start_server(app, log, **options)
        return server

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()
