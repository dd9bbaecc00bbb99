"""WebSocket and SSE connections through a fake transport, with the clock
driven by hand: no sockets, and the reactor's loop never runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from iodine import CloseReason, Reactor
from iodine.http import sse
from iodine.http.websocket import connection, frames
from iodine.http.websocket.frames import Decoder
from tests.ws.conftest import Recorder


class FakeTransport:
    """Records what a connection asks of its transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.protocol: Any = None
        self.reading = False
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> list[frames.Event]:
        """What the server wrote, decoded as a client would."""
        data, self.written = bytes(self.written), bytearray()
        return Decoder(client=True, max_message=1 << 24).receive(data)


@pytest.fixture
def loopless() -> Iterator[Reactor]:
    """A reactor that believes this thread runs its (idle) loop."""
    reactor = Reactor()
    reactor.loop = asyncio.new_event_loop()
    reactor._loop_thread = threading.get_ident()
    yield reactor
    reactor.loop.close()


def read(conn: Any, data: bytes) -> None:
    """Deliver ``data`` as the loop would: through the shared read buffer."""
    conn._reactor.read_buffer[: len(data)] = data
    conn.buffer_updated(len(data))


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return frames.encode(opcode, payload, fin=fin, mask=frames.new_mask())


def test_upgrade_switches_the_protocol_and_decodes_leftover_bytes(
    loopless: Reactor,
) -> None:
    transport, recorder = FakeTransport(), Recorder(echo=False)
    leftover = masked(frames.TEXT, b"first") + masked(frames.PING, b"p")
    conn = connection.upgrade(
        loopless, transport, lambda: recorder, {"path": "/"}, leftover
    )
    assert transport.protocol is conn
    assert transport.reading
    assert recorder.events == [("open", None), ("message", "first")]
    assert transport.frames() == [(frames.PONG, b"p")]
    assert conn.env == {"path": "/"}


def test_too_big_frame_in_the_leftover_closes_with_1009(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    leftover = masked(frames.BINARY, b"x" * 11)
    conn = connection.upgrade(
        loopless, transport, lambda: recorder, None, leftover, max_message=10
    )
    assert transport.frames() == [(frames.CLOSE, (1009, ""))]
    assert transport.closed
    assert recorder.messages() == []
    conn.connection_lost(None)
    assert recorder.events[-1] == ("close", CloseReason.ERROR)
    assert conn.error is not None
    assert conn.close_code == 1006  # the peer never sent a close frame


def test_close_handshake_we_start(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    conn = connection.upgrade(loopless, transport, lambda: recorder)
    conn.close(4000, "bye")
    assert not conn.is_open
    assert not conn.write("dropped")
    assert transport.frames() == [(frames.CLOSE, (4000, "bye"))]
    assert not transport.is_closing()  # waiting for the peer's close frame

    conn.feed(masked(frames.TEXT, b"ignored") + masked(frames.CLOSE, b"\x0f\xa0"))
    assert transport.is_closing()
    assert transport.frames() == []  # nothing after our close frame
    conn.connection_lost(None)
    assert recorder.messages() == []
    assert recorder.events[-1] == ("close", CloseReason.LOCAL)
    assert conn.close_code == 4000


def test_close_handshake_the_peer_starts(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    conn = connection.upgrade(loopless, transport, lambda: recorder)
    conn.feed(masked(frames.CLOSE, frames.close_payload(1001, "going")))
    assert transport.frames() == [(frames.CLOSE, (1001, ""))]  # code echoed
    assert transport.closed
    conn.connection_lost(None)
    assert recorder.events[-1] == ("close", CloseReason.PEER)
    assert (conn.close_code, conn.close_reason) == (1001, "going")


def test_a_raising_callback_closes_with_1011_instead_of_aborting(
    loopless: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    class Raising(Recorder):
        def on_message(self, conn: Any, data: Any) -> None:
            super().on_message(conn, data)
            raise RuntimeError("boom")

    transport, recorder = FakeTransport(), Raising(echo=False)
    conn = connection.upgrade(loopless, transport, lambda: recorder)
    with caplog.at_level("ERROR", logger="iodine.ws"):
        conn.feed(masked(frames.TEXT, b"hi") + masked(frames.TEXT, b"dropped"))
    assert transport.frames() == [(frames.CLOSE, (1011, ""))]
    assert transport.closed
    assert not transport.aborted  # the close frame is flushed, not dropped
    assert recorder.messages() == ["hi"]  # nothing more once failed
    assert isinstance(conn.error, RuntimeError)
    [record] = caplog.records
    assert record.exc_info is not None
    assert "on_message" in record.getMessage()
    conn.connection_lost(None)
    assert recorder.events[-1] == ("close", CloseReason.ERROR)


def test_close_refuses_codes_that_may_not_be_sent(loopless: Reactor) -> None:
    conn = connection.upgrade(loopless, FakeTransport(), Recorder)
    with pytest.raises(ValueError, match="1006"):
        conn.close(1006)


def test_pings_and_the_timeout_follow_the_clock(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    conn = connection.upgrade(loopless, transport, lambda: recorder, ping=40)
    start = conn._last_seen

    # Silent for less than the interval: nothing. Then a ping, only one.
    assert not conn.idle_for(start + 39)
    assert transport.frames() == []
    assert not conn.idle_for(start + 40)
    assert not conn.idle_for(start + 41)
    assert transport.frames() == [(frames.PING, b"")]

    # The peer answers: the clock restarts from its pong.
    loopless.now = start + 50
    read(conn, masked(frames.PONG, b""))
    assert not conn.idle_for(start + 89)
    assert not conn.idle_for(start + 90)
    assert transport.frames() == [(frames.PING, b"")]

    # Silent for another interval after that ping: closed with 1011.
    assert not conn.idle_for(start + 129)
    assert conn.idle_for(start + 130)
    assert transport.frames() == [(frames.CLOSE, (1011, "ping timeout"))]
    assert transport.closed
    conn.connection_lost(None)
    assert recorder.events[-1] == ("close", CloseReason.TIMEOUT)


def test_shutdown_sends_1001(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    conn = connection.upgrade(loopless, transport, lambda: recorder)
    conn.shutdown()
    assert ("shutdown", None) in recorder.events
    assert transport.frames() == [(frames.CLOSE, (1001, ""))]


def test_messages_read_while_paused_are_held_in_order(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder(echo=False)
    conn = connection.upgrade(loopless, transport, lambda: recorder)
    conn.pause_writing()
    conn.feed(masked(frames.TEXT, b"a") + masked(frames.BINARY, b"b"))
    assert recorder.messages() == []
    conn.resume_writing()
    assert recorder.messages() == ["a", b"b"]


def test_sse_stream_writes_events_and_pings_when_idle(loopless: Reactor) -> None:
    transport, recorder = FakeTransport(), Recorder()
    conn = sse.upgrade(loopless, transport, lambda: recorder, {"path": "/"}, ping=30)
    assert conn.protocol == "sse"
    conn.write("a\nb")
    conn.write(bytearray(b"c"))
    conn.write_sse("d", id="1")
    assert bytes(transport.written) == (
        b"data: a\ndata: b\n\ndata: c\n\nid: 1\ndata: d\n\n"
    )
    transport.written.clear()
    start = conn._last_seen
    assert not conn.idle_for(start + 29)
    assert conn.idle_for(start + 30)
    assert bytes(transport.written) == b": ping\n\n"
    conn.buffer_updated(5)  # a stray read is not a message
    assert recorder.messages() == []
