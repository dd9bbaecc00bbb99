"""The HTTP protocol through a fake transport: writes, timers, memory.

No sockets: the protocol is fed bytes and its writes are recorded, and the
reactor's clock (``reactor.now``) is set by hand, so timeouts are checked
without waiting.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iodine.core.reactor import Reactor
from iodine.http.config import HttpConfig
from iodine.http.protocol import HttpProtocol
from iodine.http.service import HttpServer

EAGER = sys.version_info >= (3, 12)


class FakeTransport:
    """Records what the protocol does to its transport."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.protocol: HttpProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {
            "peername": ("127.0.0.1", 50000),
            "sockname": ("127.0.0.1", 8000),
        }.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(
                    self.protocol.connection_lost, None
                )

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int = 0) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def connect(
    app: Any, now: float = 0.0, **options: Any
) -> tuple[HttpProtocol, FakeTransport, Reactor]:
    reactor = Reactor()
    reactor.loop = asyncio.get_running_loop()
    reactor.now = now
    server = HttpServer(reactor, app, HttpConfig(**options))
    protocol = server.make_protocol()
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, reactor


async def settle() -> None:
    # Python 3.11 has no eager tasks: each pipelined request then takes a
    # few loop iterations (task start, completion callback, next request).
    for _ in range(100):
        await asyncio.sleep(0)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


async def test_pipelined_responses_go_out_in_order() -> None:
    protocol, transport, _ = connect(hello)
    protocol.data_received(b"".join(get(f"/{index}") for index in range(16)))
    await settle()
    bodies = [
        part.rsplit(b"\r\n\r\n", 1)[-1]
        for part in transport.data.split(b"HTTP/1.1 ")[1:]
    ]
    assert bodies == [b"/%d" % index for index in range(16)]


@pytest.mark.skipif(not EAGER, reason="eager tasks need Python 3.12")
async def test_pipelined_responses_leave_in_one_write() -> None:
    protocol, transport, _ = connect(hello)
    protocol.data_received(b"".join(get(f"/{index}") for index in range(16)))
    assert len(transport.writes) == 1
    assert transport.writes[0].count(b"HTTP/1.1 200 OK") == 16


@pytest.mark.parametrize(
    ("head", "version", "kept"),
    [
        (b"GET / HTTP/1.1\r\nHost: t\r\n", "1.1", True),
        (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n", "1.1", True),
        (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n", "1.1", False),
        (b"GET / HTTP/1.0\r\n", "1.0", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", "1.0", True),
        (b"GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n", "1.0", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n", "1.0", True),
        # llhttp keeps these alive; the server refuses the version.
        (b"GET / HTTP/2.0\r\nHost: t\r\nConnection: keep-alive\r\n", None, False),
        (b"GET / HTTP/0.9\r\nConnection: keep-alive\r\n", None, False),
    ],
)
async def test_http_version_and_keep_alive_are_what_the_request_says(
    head: bytes, version: str | None, kept: bool
) -> None:
    # The protocol knows HTTP/1.1 from llhttp's keep-alive answer when no
    # Connection header could have changed it: each line here checks one
    # way the shortcut could misread a request.
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["http_version"])
        await hello(scope, receive, send)

    protocol, transport, _ = connect(app)
    protocol.data_received(head + b"\r\n")
    await settle()
    if version is None:
        assert seen == []
        assert transport.data.startswith(b"HTTP/1.1 505 ")
    else:
        assert seen == [version]
        assert transport.data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (not protocol.closing) is kept


async def test_reset_connection_releases_protocol_and_timers() -> None:
    received: list[str] = []

    async def waits_for_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for _ in range(10):
            message = await receive()
            received.append(message["type"])
            if message["type"] == "http.disconnect":
                return

    protocol, transport, reactor = connect(waits_for_body)
    server = protocol.server
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial"
    )
    await settle()
    assert protocol in reactor.connections

    protocol.connection_lost(ConnectionResetError())
    await settle()
    assert received == ["http.request", "http.disconnect"]
    assert protocol not in reactor.connections
    assert protocol not in reactor._timed  # the once-a-second watch list
    assert not server.tasks
    assert server.connections == 0

    ref = weakref.ref(protocol)
    del protocol
    transport.protocol = None
    gc.collect()
    assert ref() is None


async def test_disconnect_wakes_an_app_waiting_for_the_body() -> None:
    received: list[str] = []

    async def reads_twice(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for _ in range(2):
            received.append((await receive())["type"])

    protocol, _, _ = connect(reads_twice)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
    await settle()
    protocol.connection_lost(None)
    await settle()
    assert received == ["http.disconnect", "http.disconnect"]


async def test_header_timeout_answers_408_and_closes() -> None:
    protocol, transport, _ = connect(hello, now=100.0, header_timeout=20)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n")
    assert protocol.idle_for(105.0) is False
    assert protocol.idle_for(119.0) is False
    assert protocol.idle_for(120.5) is True
    assert transport.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.closed


async def test_keep_alive_timeout_closes_silently() -> None:
    protocol, transport, _ = connect(hello, now=10.0, keep_alive=40)
    protocol.data_received(get("/"))
    await settle()
    answered = len(transport.writes)
    assert answered >= 1
    assert protocol.idle_for(49.0) is False
    assert protocol.idle_for(50.0) is True
    assert transport.closed
    assert len(transport.writes) == answered


async def test_a_busy_connection_never_times_out() -> None:
    started = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(3600)

    protocol, transport, _ = connect(slow, keep_alive=1, header_timeout=1)
    protocol.data_received(get("/"))
    await started.wait()
    assert protocol.idle_for(10_000.0) is False
    assert not transport.closed
    protocol.connection_lost(None)
    for task in list(protocol.server.tasks):
        task.cancel()
    await settle()


async def test_stale_send_raises_and_writes_nothing() -> None:
    kept: list[Any] = []

    async def keeps_send(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kept.append(send)
        await hello(scope, receive, send)

    protocol, transport, _ = connect(keeps_send)
    protocol.data_received(get("/first"))
    await settle()
    before = transport.data
    with pytest.raises(RuntimeError):
        await kept[0]({"type": "http.response.body", "body": b"LEAK"})
    protocol.data_received(get("/second"))
    await settle()
    assert b"LEAK" not in transport.data
    assert transport.data.startswith(before)


async def test_write_backpressure_makes_send_wait() -> None:
    waited: list[bool] = []

    async def streams(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sending = asyncio.ensure_future(
            send({"type": "http.response.body", "body": b"a", "more_body": True})
        )
        for _ in range(10):
            await asyncio.sleep(0)
        waited.append(not sending.done())
        await sending
        await send({"type": "http.response.body", "body": b"b"})

    protocol, transport, _ = connect(streams)
    protocol.pause_writing()
    protocol.data_received(get("/"))
    await settle()
    assert waited == [True]
    assert not transport.data.endswith(b"0\r\n\r\n")
    protocol.resume_writing()
    await settle()
    assert transport.data.endswith(b"0\r\n\r\n")


async def test_unread_body_pauses_reading() -> None:
    gate = asyncio.Event()

    async def reads_late(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()
        total = 0
        for _ in range(1000):
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    size = 300_000
    protocol, transport, _ = connect(reads_late)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
    )
    sent = 0
    for _ in range(size // 10_000):
        if not transport.reading:
            break
        protocol.data_received(b"x" * 10_000)
        sent += 10_000
    assert not transport.reading, "reading went on for a body nobody reads"
    assert sent < size
    gate.set()
    await settle()
    assert is_reading(transport)
    for _ in range(size // 10_000):
        if sent == size:
            break
        protocol.data_received(b"x" * 10_000)
        sent += 10_000
        await settle()
    await settle()
    assert transport.data.endswith(b"\r\n\r\n%d" % size)
    assert transport.data.startswith(b"HTTP/1.1 200")


def is_reading(transport: FakeTransport) -> bool:
    # A function, so mypy does not narrow ``reading`` from the assert above.
    return transport.reading


async def test_app_exception_gives_500_and_keeps_the_connection() -> None:
    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("broken")

    protocol, transport, _ = connect(fails)
    protocol.data_received(get("/"))
    await settle()
    assert transport.data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert not transport.closed


# ------------------------------------------------ a client gone mid-response


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Whether ``predicate`` came true within ``timeout`` (for pool threads)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def collected(*refs: weakref.ref[Any]) -> bool:
    gc.collect()
    return all(ref() is None for ref in refs)


def start_event() -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": []}


def body_event(body: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": True}


async def test_client_gone_mid_stream_wakes_the_app_and_leaks_nothing() -> None:
    seen: list[str] = []

    async def streams(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start_event())
        await send(body_event(b"first"))
        # The GET's empty body, then nothing until the client goes away.
        for _ in range(3):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        seen.append(message["type"])
        try:
            await send(body_event(b"late"))
        except OSError:
            seen.append("send raised OSError")

    protocol, transport, reactor = connect(streams)
    server = protocol.server
    protocol.data_received(get("/"))
    await settle()
    assert transport.data.endswith(b"5\r\nfirst\r\n")
    assert seen == []
    assert protocol._active is not None
    exchange = weakref.ref(protocol._active)

    protocol.connection_lost(ConnectionResetError())
    await settle()
    assert seen == ["http.disconnect", "send raised OSError"]
    assert b"late" not in transport.data
    assert not server.tasks
    assert protocol not in reactor.connections
    assert server.connections == 0

    connection = weakref.ref(protocol)
    del protocol
    transport.protocol = None
    assert collected(connection, exchange)


async def test_client_gone_while_send_waits_to_drain_leaks_nothing() -> None:
    seen: list[str] = []

    async def streams(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start_event())
        # The transport is full: this waits until it drains or the client
        # goes away.
        await send(body_event(b"first"))
        seen.append("drain wait over")
        try:
            await send(body_event(b"late"))
        except OSError:
            seen.append("send raised OSError")
        for _ in range(3):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        seen.append(message["type"])

    protocol, transport, reactor = connect(streams)
    server = protocol.server
    protocol.pause_writing()
    protocol.data_received(get("/"))
    await settle()
    assert transport.data.endswith(b"5\r\nfirst\r\n")
    assert seen == []
    assert protocol._active is not None
    exchange = weakref.ref(protocol._active)

    protocol.connection_lost(ConnectionResetError())
    await settle()
    assert seen == ["drain wait over", "send raised OSError", "http.disconnect"]
    assert b"late" not in transport.data
    assert not server.tasks
    assert protocol not in reactor.connections

    connection = weakref.ref(protocol)
    del protocol
    transport.protocol = None
    assert collected(connection, exchange)


class HeldStream:
    """A WSGI response: "first", then "late" once the test sets ``go``."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.closed = threading.Event()
        self.asked_after_late = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"first"
        self.go.wait(5.0)
        yield b"late"
        # Only reached if the server goes on iterating for a client it
        # knows is gone.
        self.asked_after_late = True

    def close(self) -> None:
        self.closed.set()


async def test_wsgi_client_gone_mid_stream_closes_the_iterable() -> None:
    stream = HeldStream()

    def app(environ: dict[str, Any], start_response: Any) -> HeldStream:
        start_response("200 OK", [])
        return stream

    protocol, transport, reactor = connect(app)
    server = protocol.server
    reactor.pool.start()
    try:
        protocol.data_received(get("/"))
        assert await eventually(lambda: transport.data.endswith(b"5\r\nfirst\r\n"))
        assert protocol._active is not None
        exchange = weakref.ref(protocol._active)

        protocol.connection_lost(ConnectionResetError())
        stream.go.set()
        assert await eventually(stream.closed.is_set)
        await settle()
        assert not stream.asked_after_late
        assert b"late" not in transport.data
        assert protocol not in reactor.connections
        assert server.connections == 0
    finally:
        # Stopped before the check below: an idle pool thread holds on to
        # its last job (see the next test).
        await asyncio.to_thread(reactor.pool.shutdown, 2.0)

    connection = weakref.ref(protocol)
    del protocol
    transport.protocol = None
    assert collected(connection, exchange)


async def test_idle_pool_thread_keeps_no_finished_wsgi_exchange() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"done"]

    protocol, transport, reactor = connect(app)
    reactor.pool.start()
    try:
        protocol.data_received(get("/"))
        assert await eventually(lambda: transport.data.endswith(b"done"))
        protocol.connection_lost(ConnectionResetError())
        await settle()

        connection = weakref.ref(protocol)
        del protocol
        transport.protocol = None
        assert collected(connection)
    finally:
        await asyncio.to_thread(reactor.pool.shutdown, 2.0)


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        # The reason phrase is the server's own, by the code.
        ("299 Whatever", b"HTTP/1.1 299 "),
        ("OK", b"HTTP/1.1 500 "),
        (["200 OK"], b"HTTP/1.1 500 "),  # not hashable
        (b"200 OK", b"HTTP/1.1 500 "),  # not str
    ],
)
async def test_wsgi_status_lines_are_checked_every_time(
    status: Any, answer: bytes
) -> None:
    # The code of a status line is remembered after its first use: the
    # second request with the same line must get the same answer.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [])
        return [b"body"]

    protocol, transport, reactor = connect(app)
    reactor.pool.start()
    try:
        protocol.data_received(get("/"))
        assert await eventually(lambda: transport.data.count(answer) == 1)
        protocol.data_received(get("/"))
        assert await eventually(lambda: transport.data.count(answer) == 2)
    finally:
        await asyncio.to_thread(reactor.pool.shutdown, 2.0)


def sized_or_streamed(body: list[bytes], streamed: bool) -> Any:
    """A WSGI response body as a list (sent whole) or as a generator (sent
    piece by piece): the two ways a response reaches the loop."""
    if not streamed:
        return body
    return (piece for piece in body)


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "generator"])
async def test_wsgi_invalid_header_is_500_and_the_connection_lives_on(
    streamed: bool,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/bad":
            start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        else:
            start_response("200 OK", [("Content-Length", "2")])
        return sized_or_streamed([b"ok"], streamed)

    protocol, transport, reactor = connect(app)
    reactor.pool.start()
    try:
        protocol.data_received(get("/bad"))
        assert await eventually(lambda: b"HTTP/1.1 500 " in transport.data)
        assert b"Injected" not in transport.data
        protocol.data_received(get("/good"))
        assert await eventually(lambda: transport.data.endswith(b"\r\n\r\nok"))
        assert not transport.closed
    finally:
        await asyncio.to_thread(reactor.pool.shutdown, 2.0)


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "generator"])
@pytest.mark.parametrize(
    ("request_head", "expected_head", "expected_body"),
    [
        # HEAD: no body; sent whole, the length a GET would get.
        (b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", b"content-length: 5\r\n", b""),
        # HTTP/1.0 without keep-alive: the body, then the connection closes.
        (b"GET / HTTP/1.0\r\n\r\n", b"connection: close\r\n", b"hello"),
    ],
    ids=["head", "http-1.0"],
)
async def test_wsgi_response_framing_follows_the_request(
    streamed: bool, request_head: bytes, expected_head: bytes, expected_body: bytes
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return sized_or_streamed([b"hel", b"lo"], streamed)

    protocol, transport, reactor = connect(app)
    reactor.pool.start()
    try:
        protocol.data_received(request_head)
        assert await eventually(
            lambda: transport.closed or b"\r\n\r\n" in transport.data
        )
        await settle()
        head, _, body = transport.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        if streamed and request_head.startswith(b"HEAD"):
            # Streamed, the length is not known when the head goes out.
            assert b"content-length" not in head
            assert b"transfer-encoding" not in head
        else:
            assert expected_head in head + b"\r\n"
        assert body == expected_body
    finally:
        await asyncio.to_thread(reactor.pool.shutdown, 2.0)
