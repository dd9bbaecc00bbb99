"""The ws:// client's ``ping`` option, against a peer that goes quiet.

The peer is a listening socket driven by hand from the test: it answers the
opening handshake and then sends only what the test tells it to, which no
real server can be made to do. The client runs on a private reactor, whose
idle check comes once a second (core's ``TICK_SECONDS``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from iodine import CloseReason, Reactor
from iodine.http.websocket import frames, handshake
from tests.http.conftest import read_until, read_until_close
from tests.ws.conftest import Recorder, Runner, recv_exactly

# With ping=1 the ping goes out at the first idle check a full second after
# the last read: within two ticks at worst. The close follows one more
# second of silence after the ping.
PING = 1.0
WITHIN = 2 * PING + 0.5


class HandPeer:
    """A WebSocket server that is a bare socket: it says what it is told."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def accept(self) -> socket.socket:
        """Take the client's connection and answer its handshake with 101."""
        self.listener.settimeout(5)
        sock, _ = self.listener.accept()
        head = read_until(sock, b"\r\n\r\n", timeout=5)
        assert head.endswith(b"\r\n\r\n"), head
        key = next(
            line.partition(b":")[2].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-accept: "
            + handshake.accept_key(key).encode()
            + b"\r\n\r\n"
        )
        return sock

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def peer() -> Iterator[HandPeer]:
    peer = HandPeer()
    try:
        yield peer
    finally:
        peer.close()


def client_frame(sock: socket.socket, within: float) -> tuple[int, bytes]:
    """The client's next frame, (first byte, unmasked payload), which must
    start to arrive within ``within`` seconds. A client masks every frame."""
    try:
        first, second = recv_exactly(sock, 2, timeout=within)
    except TimeoutError:
        raise AssertionError(f"no frame from the client in {within} s") from None
    assert second & 0x80, "a client frame must be masked (RFC 6455 section 5.3)"
    size = second & 0x7F
    assert size < 126, "control frames are short"
    mask = recv_exactly(sock, 4)
    return first, frames.unmask(recv_exactly(sock, size), mask)


def test_a_silent_peer_is_pinged_then_closed_with_1011(
    reactor: Reactor, runner: Runner, peer: HandPeer
) -> None:
    runner.start()
    recorder = Recorder(echo=False)
    conn = reactor.connect(f"ws://127.0.0.1:{peer.port}/", handler=recorder, ping=PING)
    with peer.accept() as sock:
        assert recorder.opened.wait(5)

        # The peer answers the first ping: the client keeps the connection
        # and pings again after another quiet interval.
        assert client_frame(sock, WITHIN) == (0x89, b"")
        sock.sendall(frames.encode(frames.PONG, b""))
        assert client_frame(sock, WITHIN) == (0x89, b"")

        # Silence after that ping: the client gives up with 1011.
        silent_since = time.monotonic()
        first, payload = client_frame(sock, WITHIN)
        assert first == 0x88
        assert frames.parse_close(payload) == (1011, "ping timeout")
        assert time.monotonic() - silent_since < WITHIN
        # The client does not wait for our close frame (a failed connection).
        assert read_until_close(sock, 5) == b""

    assert recorder.close_reason() is CloseReason.TIMEOUT
    assert conn.close_code == 1006  # we never sent a close frame
    assert recorder.messages() == []
