"""WebSockets and event streams at the edges, through the real HTTP server:
pings to silent peers, a message over the limit in the very first read, a
peer that never answers the shutdown's close frame, and a native handler
that raises.

The peer is a raw socket wherever it must misbehave. Servers run
``http_server_apps:app`` (``asgi_ws_apps:app`` plus ``/raises``) in their own
process; what only the server sees reaches the tests as ``MARK`` lines in its
log.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from iodine.http.websocket import frames
from tests.http.conftest import Server, read_until, read_until_close
from tests.ws.conftest import (
    ServerPool,
    handshake_request,
    read_frame,
    read_head,
    start_server,
)
from tests.ws.http_server_apps import SHUTDOWN_TIMEOUT_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.ws.http_server_apps:app"

# Servers here ping after 1 s of silence. The reactor looks for idle
# connections once a second, so the ping goes out within two ticks of the
# last read, and the 1011 within two more.
PING = 1
WITHIN = 2 * PING + 0.5

# What NativeEcho writes in on_open: two text frames before any echo.
NATIVE_GREETING = 2


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """``servers(**options)``: a server shared by the tests that ask for the
    same options."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))

    def start(**options: Any) -> Server:
        return pool.get(APP, **options)

    yield start
    pool.stop()


def websocket(server: Server, path: str, early: bytes = b"") -> socket.socket:
    """A raw socket whose handshake for ``path`` got its 101; ``early`` goes
    out in the same ``sendall`` as the request."""
    request, _ = handshake_request(path)
    sock = server.connect()
    sock.sendall(request + early)
    head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def frame_within(sock: socket.socket, seconds: float) -> tuple[int, bytes]:
    """The server's next frame, which must start to arrive within ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        raise AssertionError(f"no frame from the server in {seconds} s") from None
    return read_frame(sock)


def close_frame(sock: socket.socket, seconds: float = 5) -> tuple[int, str]:
    """Code and reason of the close frame that ends what the server sends
    (data frames before it are skipped); then the server must hang up."""
    for _ in range(10):
        first, payload = frame_within(sock, seconds)
        if first == 0x88:
            assert read_until_close(sock, 5) == b"", "data after the close frame"
            return frames.parse_close(payload)
        assert first in (0x81, 0x82), f"unexpected frame {first:#x}"
    raise AssertionError("no close frame among the first ten")


def masked_text(text: str) -> bytes:
    return frames.encode(frames.TEXT, text.encode(), mask=frames.new_mask())


# ------------------------------------------------------------------- pings


@pytest.mark.parametrize(
    ("path", "greeting"), [("/echo?t=ping", 0), ("/native?t=ping", NATIVE_GREETING)]
)
def test_a_silent_websocket_is_pinged_then_closed_with_1011(
    servers: Callable[..., Server], path: str, greeting: int
) -> None:
    server = servers(ping=PING)
    with websocket(server, path) as sock:
        for _ in range(greeting):
            assert read_frame(sock)[0] == 0x81
        assert frame_within(sock, WITHIN) == (0x89, b"")
        # No pong: after another interval the server gives up.
        assert close_frame(sock, WITHIN) == (1011, "ping timeout")
    if path.startswith("/native"):
        mark = "MARK native-close /native?t=ping TIMEOUT 1006"
        assert mark in server.wait_for_log(mark)


def test_an_idle_event_stream_gets_ping_comments_and_stays_open(
    servers: Callable[..., Server],
) -> None:
    server = servers(ping=PING)
    with server.connect() as sock:
        sock.sendall(
            b"GET /sse?t=ping HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n"
        )
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")
        # NativeStream's two events, then nothing written for a ping interval.
        stream = read_until(sock, b": ping\n\n", timeout=WITHIN)
        assert stream == (
            b"data: open sse http /sse\n\nid: 2\nevent: tick\ndata: second\n\n"
            b": ping\n\n"
        )
        # An event stream's client never speaks: silence does not close it.
        assert read_until(sock, b": ping\n\n", timeout=WITHIN) == b": ping\n\n"


# ----------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("path", "mark"),
    [
        ("/echo?t=first-read", "MARK asgi-disconnect /echo?t=first-read 1009 ''"),
        ("/native?t=first-read", "MARK native-close /native?t=first-read ERROR"),
    ],
)
def test_a_message_over_the_limit_with_the_handshake_closes_with_1009(
    servers: Callable[..., Server], path: str, mark: str
) -> None:
    server = servers(max_message=1024)
    # The frame's header already says it is too big; it comes in the same
    # read as the request, so the new connection decodes it as leftover.
    big = frames.encode(frames.BINARY, b"x" * 2000, mask=frames.new_mask())
    with websocket(server, path, early=big) as sock:
        assert close_frame(sock) == (1009, "")
    assert mark in server.wait_for_log(mark)


# ---------------------------------------------------------------- failures


def test_a_native_handler_that_raises_closes_with_1011(
    servers: Callable[..., Server],
) -> None:
    server = servers()
    with websocket(server, "/raises") as sock:
        assert read_frame(sock) == (0x81, b"ready")
        sock.sendall(masked_text("hi"))
        assert close_frame(sock) == (1011, "")

    # on_close still learns of the error, and the traceback is logged.
    log = server.wait_for_log("MARK raising-close")
    assert "MARK raising-close ERROR 1006 RuntimeError" in log
    assert "closing the WebSocket with 1011" in log
    assert "RuntimeError: boom on 'hi'" in log

    # The server carries on with other connections.
    with websocket(server, "/echo?t=after-raise") as sock:
        sock.sendall(masked_text("still here"))
        assert read_frame(sock) == (0x81, b"still here")


# ---------------------------------------------------------------- shutdown

SHUTDOWN_TIMEOUT = 1.0


def test_shutdown_drops_peers_that_never_answer_its_1001_in_time(
    tmp_path: Path,
) -> None:
    server = start_server(
        APP,
        tmp_path / "server.log",
        env={SHUTDOWN_TIMEOUT_VARIABLE: str(SHUTDOWN_TIMEOUT)},
    )
    try:
        with ExitStack() as stack:
            asgi = stack.enter_context(websocket(server, "/echo?t=mute"))
            native = stack.enter_context(websocket(server, "/native?t=mute"))
            for _ in range(NATIVE_GREETING):
                assert read_frame(native)[0] == 0x81

            stopped_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            for sock in (asgi, native):
                first, payload = frame_within(sock, SHUTDOWN_TIMEOUT)
                assert (first, frames.parse_close(payload)) == (0x88, (1001, ""))

            # Neither peer answers. The server waits shutdown_timeout, not
            # the 10 s a close handshake may take, then drops them and exits.
            assert server.proc.wait(SHUTDOWN_TIMEOUT + 5) == 0
            took = time.monotonic() - stopped_at
            assert SHUTDOWN_TIMEOUT <= took < SHUTDOWN_TIMEOUT + 1.5
            for sock in (asgi, native):
                assert read_until_close(sock, 1) == b""

        log = server.log()
        assert "2 connection(s) still open after 1.0 s; closing them." in log
        assert "MARK asgi-disconnect /echo?t=mute 1006 ''" in log
        assert "MARK native-close /native?t=mute SHUTDOWN 1006" in log
    finally:
        server.stop()
