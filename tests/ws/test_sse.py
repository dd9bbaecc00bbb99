"""SSE: the event-stream format, and streams over real sockets with httpx."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from iodine import CloseReason, Reactor
from iodine.http.sse import events
from tests.ws.conftest import Recorder, Runner, open_socket, read_head

# ------------------------------------------------------------------ format


def test_data_is_split_on_every_kind_of_line_break() -> None:
    assert events.format_data("one") == b"data: one\n\n"
    assert events.format_data(b"a\nb\r\nc\rd") == (
        b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert events.format_data("trailing\n") == b"data: trailing\ndata: \n\n"


def test_full_events_carry_id_event_and_retry() -> None:
    assert events.format_event("x", id="7", event="tick", retry=500) == (
        b"id: 7\nevent: tick\nretry: 500\ndata: x\n\n"
    )
    with pytest.raises(ValueError, match="line break"):
        events.format_event("x", event="a\nb")
    with pytest.raises(ValueError, match="NUL"):
        events.format_event("x", id="a\0")
    with pytest.raises(ValueError, match="negative"):
        events.format_event("x", retry=-1)


def test_event_stream_requests_are_found_inside_accept_lists() -> None:
    assert events.is_event_stream_request(
        [(b"Accept", b"text/html, Text/Event-Stream;q=0.9")]
    )
    assert not events.is_event_stream_request([(b"accept", b"text/html")])
    assert events.last_event_id([(b"last-event-id", b"42")]) == "42"
    assert events.last_event_id([]) is None


def test_response_head_refuses_header_injection() -> None:
    head = events.response_head([("set-cookie", "a=b")])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: text/event-stream" in head
    assert head.endswith(b"set-cookie: a=b\r\n\r\n")
    with pytest.raises(ValueError, match="invalid header"):
        events.response_head([("x", "a\r\nb: c")])


# ----------------------------------------------------------------- sockets


def serve(reactor: Reactor, runner: Runner, handler: object, **options: Any) -> int:
    listener = reactor.listen(service="ws-test", handler=handler, port=0, **options)
    runner.start()
    return listener.port


SSE_HEADERS = {"accept": "text/event-stream", "last-event-id": "6"}


def test_events_reach_an_http_client(reactor: Reactor, runner: Runner) -> None:
    class Streamer(Recorder):
        def on_open(self, conn: Any) -> None:
            super().on_open(conn)
            conn.write("one\ntwo")
            conn.write_sse("x", id="7", event="tick", retry=500)
            conn.close()

    streamer = Streamer()
    port = serve(reactor, runner, lambda: streamer)
    with httpx.stream(
        "GET", f"http://127.0.0.1:{port}/events", headers=SSE_HEADERS, timeout=5
    ) as response:
        body = response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-test"] == "sse"
    assert (
        body == b"data: one\ndata: two\n\nid: 7\nevent: tick\nretry: 500\ndata: x\n\n"
    )
    assert streamer.conn.protocol == "sse"
    assert streamer.conn.last_event_id == "6"
    assert streamer.close_reason() is CloseReason.LOCAL


def test_shutdown_ends_the_stream_cleanly(reactor: Reactor, runner: Runner) -> None:
    class Streamer(Recorder):
        def on_open(self, conn: Any) -> None:
            super().on_open(conn)
            conn.write("hello")

        def on_shutdown(self, conn: Any) -> None:
            super().on_shutdown(conn)
            conn.write_sse("server restarting", event="bye")

    streamer = Streamer()
    port = serve(reactor, runner, lambda: streamer)
    with httpx.stream(
        "GET", f"http://127.0.0.1:{port}/", headers=SSE_HEADERS, timeout=5
    ) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        stopper = threading.Thread(target=runner.stop)
        stopper.start()
        rest = b"".join(chunks)  # ends without an error: the body is complete
        stopper.join(10)
    assert first + rest == b"data: hello\n\nevent: bye\ndata: server restarting\n\n"
    assert streamer.close_reason() is CloseReason.SHUTDOWN


def test_idle_streams_get_a_ping_comment(reactor: Reactor, runner: Runner) -> None:
    streamer = Recorder()
    port = serve(reactor, runner, lambda: streamer, ping=1)
    with open_socket(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        received = b""
        sock.settimeout(10)
        while b": ping\n\n" not in received:
            chunk = sock.recv(100)
            assert chunk, "closed before a ping"
            received += chunk
        assert received.startswith(b": ping\n\n")
        # What the client sends is ignored, and the stream stays open.
        sock.sendall(b"ignored bytes")
        assert sock.recv(100) == b": ping\n\n"
    assert streamer.close_reason() is CloseReason.PEER
    assert streamer.messages() == []
