"""The connection driven through a fake transport, without sockets or a loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from iodine import CloseReason, Connection, Reactor
from iodine.core.connection import MAX_QUEUED_EVENTS


class FakeTransport:
    """Records what the connection asks of its transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.buffered = 0
        self.reading = True
        self.closed = False
        self.aborted = False
        self.limits: tuple[int, int] | None = None

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        self.limits = (high, low)

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


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_open(self, conn: Connection) -> None:
        self.events.append(("open", None))

    def on_message(self, conn: Connection, data: bytes) -> None:
        self.events.append(("message", data))

    def on_drained(self, conn: Connection) -> None:
        self.events.append(("drained", None))

    def on_close(self, conn: Connection, reason: CloseReason) -> None:
        self.events.append(("close", reason))


@pytest.fixture
def loopless() -> Iterator[Reactor]:
    """A reactor that believes this thread runs its (idle) loop."""
    reactor = Reactor()
    reactor.loop = asyncio.new_event_loop()
    reactor._loop_thread = threading.get_ident()
    yield reactor
    reactor.loop.close()


def feed(conn: Connection, reactor: Reactor, data: bytes) -> None:
    buffer = conn.get_buffer(-1)
    buffer[: len(data)] = data
    conn.buffer_updated(len(data))


def test_open_message_close(loopless: Reactor) -> None:
    handler = Recorder()
    conn = Connection(loopless, handler)
    transport = FakeTransport()
    conn.connection_made(transport)
    assert transport.limits == (64 * 1024, 0)
    feed(conn, loopless, b"hello")
    conn.connection_lost(None)
    assert handler.events == [
        ("open", None),
        ("message", b"hello"),
        ("close", CloseReason.PEER),
    ]
    assert conn.handler is None  # released after on_close


def test_message_is_a_copy_of_the_shared_buffer(loopless: Reactor) -> None:
    handler = Recorder()
    conn = Connection(loopless, handler)
    conn.connection_made(FakeTransport())
    feed(conn, loopless, b"first")
    feed(conn, loopless, b"XXXXX")
    assert [data for name, data in handler.events if name == "message"] == [
        b"first",
        b"XXXXX",
    ]


def test_write_backpressure_pauses_reading_and_drains(loopless: Reactor) -> None:
    handler = Recorder()
    conn = Connection(loopless, handler)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.pause_writing()
    assert not transport.reading
    conn.resume_writing()
    assert transport.reading
    assert handler.events[-1] == ("drained", None)


def test_slow_consumer_cap(loopless: Reactor) -> None:
    loopless.settings.max_pending = 1000
    handler = Recorder()
    conn = Connection(loopless, handler)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.pause_writing()
    transport.buffered = 1001
    assert conn.write(b"more") is False
    assert transport.aborted
    conn.connection_lost(None)
    assert handler.events[-1] == ("close", CloseReason.SLOW_CONSUMER)


def test_backlog_of_events_pauses_reading(loopless: Reactor) -> None:
    # In thread mode with the pool not started, the first callback never
    # finishes, so every later message waits in the connection's queue.
    loopless.settings.callbacks = "threads"
    conn = Connection(loopless, Recorder())
    transport = FakeTransport()
    conn.connection_made(transport)
    for _ in range(MAX_QUEUED_EVENTS - 1):
        feed(conn, loopless, b"m")
        assert transport.reading
    feed(conn, loopless, b"m")
    assert not transport.reading


def test_writes_after_close_are_refused(loopless: Reactor) -> None:
    conn = Connection(loopless, Recorder())
    transport = FakeTransport()
    conn.connection_made(transport)
    assert conn.write(b"a") is True
    conn.close()
    assert transport.closed
    assert conn.write(b"b") is False
    assert bytes(transport.written) == b"a"


def test_str_is_written_as_utf8(loopless: Reactor) -> None:
    conn = Connection(loopless, Recorder())
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.write("grüß")
    assert bytes(transport.written) == "grüß".encode()


def test_handler_that_cannot_be_made_drops_the_connection(loopless: Reactor) -> None:
    def broken() -> object:
        raise RuntimeError("no handler today")

    conn = Connection(loopless, broken)
    transport = FakeTransport()
    conn.connection_made(transport)
    assert transport.aborted


def test_read_while_paused_is_held_then_delivered(loopless: Reactor) -> None:
    # uvloop may deliver one read after connection_made paused reading.
    handler = Recorder()
    conn = Connection(loopless, handler)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.pause_writing()
    feed(conn, loopless, b"early")
    assert ("message", b"early") not in handler.events
    assert not transport.reading
    conn.resume_writing()
    assert handler.events[-2:] == [("drained", None), ("message", b"early")]


def test_held_read_is_delivered_before_close(loopless: Reactor) -> None:
    handler = Recorder()
    conn = Connection(loopless, handler)
    conn.connection_made(FakeTransport())
    conn.pause_writing()
    feed(conn, loopless, b"last words")
    conn.connection_lost(None)
    assert handler.events[-2:] == [
        ("message", b"last words"),
        ("close", CloseReason.PEER),
    ]
