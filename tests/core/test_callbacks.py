"""Callback guarantees: ordering, threads, coroutines, errors, handler switching."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from iodine import CloseReason, Connection, Reactor

from .conftest import Runner, client, recv_exactly, wait_for


class Serial:
    """Fails the test if two callbacks of one connection ever overlap."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.active = 0
        self.overlaps = 0
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def enter(self, name: str) -> None:
        with self.lock:
            self.active += 1
            self.overlaps += self.active > 1
            self.log.append(f"{name}>")

    def leave(self, name: str) -> None:
        with self.lock:
            self.active -= 1
            self.log.append(f"<{name}")


class SlowSync(Serial):
    def on_open(self, conn: Connection) -> None:
        self.enter("open")
        time.sleep(self.pause)  # long enough for the messages to arrive
        self.leave("open")

    def on_message(self, conn: Connection, data: bytes) -> None:
        self.enter("message")
        time.sleep(self.pause / 10)
        conn.write(data)
        self.leave("message")

    def on_close(self, conn: Connection, reason: CloseReason) -> None:
        self.enter("close")
        self.leave("close")
        self.closed.set()


class SlowAsync(Serial):
    async def on_open(self, conn: Connection) -> None:
        self.enter("open")
        await asyncio.sleep(self.pause)
        self.leave("open")

    async def on_message(self, conn: Connection, data: bytes) -> None:
        self.enter("message")
        await asyncio.sleep(self.pause / 10)
        conn.write(data)
        self.leave("message")

    async def on_close(self, conn: Connection, reason: CloseReason) -> None:
        self.enter("close")
        await asyncio.sleep(0)
        self.leave("close")
        self.closed.set()


@pytest.mark.parametrize("mode", ["inline", "threads"])
@pytest.mark.parametrize("kind", [SlowSync, SlowAsync])
def test_callbacks_never_overlap_and_open_comes_first(
    reactor: Reactor, runner: Runner, mode: str, kind: type[Serial]
) -> None:
    reactor.settings.callbacks = mode  # type: ignore[assignment]
    handler = kind(pause=0.3)
    listener = reactor.listen(port=0, handler=handler)
    runner.start()
    with client(listener.port) as sock:
        for number in range(5):
            sock.sendall(b"%d" % number)
            time.sleep(0.01)  # separate reads, so five separate messages
        echoed = recv_exactly(sock, 5, timeout=10)
    assert handler.closed.wait(10)
    assert echoed == b"01234"
    assert handler.overlaps == 0
    assert handler.log[:2] == ["open>", "<open"]
    assert handler.log[-2:] == ["close>", "<close"]
    assert handler.log.count("message>") >= 1


def test_thread_mode_runs_callbacks_off_the_loop(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.callbacks = "threads"
    seen: list[str] = []

    class Where:
        def on_message(self, conn: Connection, data: bytes) -> None:
            seen.append(threading.current_thread().name)
            conn.write(data)

    listener = reactor.listen(port=0, handler=Where)
    runner.start()
    with client(listener.port) as sock:
        sock.sendall(b"?")
        recv_exactly(sock, 1)
    assert seen[0].startswith("iodine-thread-")


def test_slow_callback_does_not_stall_other_connections(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.callbacks = "threads"
    release = threading.Event()

    class Blocking:
        def on_message(self, conn: Connection, data: bytes) -> None:
            if data == b"block":
                release.wait(10)
            conn.write(data)

    listener = reactor.listen(port=0, handler=Blocking)
    runner.start()
    with client(listener.port) as slow, client(listener.port) as fast:
        slow.sendall(b"block")
        time.sleep(0.05)
        fast.sendall(b"quick")
        # The other connection is served while the first callback blocks.
        assert recv_exactly(fast, 5) == b"quick"
        assert not release.is_set()
        release.set()
        assert recv_exactly(slow, 5) == b"block"


def test_write_from_many_threads(reactor: Reactor, runner: Runner) -> None:
    conns: list[Connection] = []

    class Keep:
        def on_open(self, conn: Connection) -> None:
            conns.append(conn)

    listener = reactor.listen(port=0, handler=Keep)
    runner.start()
    writers, lines = 4, 500
    with client(listener.port) as sock:
        wait_for(lambda: conns)
        conn = conns[0]

        def write(number: int) -> None:
            for line in range(lines):
                conn.write(b"%d:%05d\n" % (number, line))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        received = recv_exactly(sock, writers * lines * 8, timeout=10)
    by_writer: dict[bytes, list[bytes]] = {}
    for row in received.splitlines():
        number, line = row.split(b":")
        by_writer.setdefault(number, []).append(line)
    # Nothing lost, nothing interleaved inside a write, each thread in order.
    assert sorted(by_writer) == [b"0", b"1", b"2", b"3"]
    for written in by_writer.values():
        assert written == [b"%05d" % n for n in range(lines)]


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_exception_closes_only_that_connection(
    reactor: Reactor,
    runner: Runner,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    reactor.settings.callbacks = mode  # type: ignore[assignment]
    reasons: list[CloseReason] = []

    class Fragile:
        def on_message(self, conn: Connection, data: bytes) -> None:
            if data == b"boom":
                raise RuntimeError("the handler broke")
            conn.write(data)

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            reasons.append(reason)

    listener = reactor.listen(port=0, handler=Fragile)
    runner.start()
    with caplog.at_level(logging.ERROR, logger="iodine.core"):
        with client(listener.port) as healthy, client(listener.port) as broken:
            broken.sendall(b"boom")
            broken.settimeout(5)
            assert broken.recv(10) == b""  # closed by the server
            healthy.sendall(b"fine")
            assert recv_exactly(healthy, 4) == b"fine"
        wait_for(lambda: len(reasons) == 2)
    assert CloseReason.ERROR in reasons
    assert "the handler broke" in caplog.text
    assert "Traceback" in caplog.text


def test_async_exception_is_isolated_too(
    reactor: Reactor, runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile:
        async def on_message(self, conn: Connection, data: bytes) -> None:
            await asyncio.sleep(0)
            raise ValueError("async failure")

    listener = reactor.listen(port=0, handler=Fragile)
    runner.start()
    with caplog.at_level(logging.ERROR, logger="iodine.core"):
        with client(listener.port) as sock:
            sock.sendall(b"x")
            sock.settimeout(5)
            assert sock.recv(1) == b""
        wait_for(lambda: "async failure" in caplog.text)


def test_handler_switch_login_then_chat(reactor: Reactor, runner: Runner) -> None:
    log: list[Any] = []

    class Chat:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_open(self, conn: Connection) -> None:
            log.append(("chat open", self.name))
            conn.write(f"Welcome, {self.name}\n")

        def on_message(self, conn: Connection, data: bytes) -> None:
            log.append(("chat message", data))
            conn.write(f"{self.name}: ".encode() + data)

    class Login:
        def on_open(self, conn: Connection) -> None:
            conn.write(b"Nickname? ")

        def on_message(self, conn: Connection, data: bytes) -> None:
            conn.handler = Chat(data.decode().strip())

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            log.append(("login close", reason))

    listener = reactor.listen(port=0, handler=Login)
    runner.start()
    with client(listener.port) as sock:
        assert recv_exactly(sock, 10) == b"Nickname? "
        sock.sendall(b"ada\n")
        assert recv_exactly(sock, 13) == b"Welcome, ada\n"
        sock.sendall(b"hello\n")
        assert recv_exactly(sock, 11) == b"ada: hello\n"
    assert log[:3] == [
        ("login close", CloseReason.HANDLER_SWITCHED),
        ("chat open", "ada"),
        ("chat message", b"hello\n"),
    ]


def test_messages_queued_during_switch_reach_the_new_handler(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.callbacks = "threads"
    order: list[str] = []

    class Second:
        def on_open(self, conn: Connection) -> None:
            order.append("second open")

        def on_message(self, conn: Connection, data: bytes) -> None:
            order.append(f"second {data.decode()}")

    class First:
        def on_message(self, conn: Connection, data: bytes) -> None:
            order.append(f"first {data.decode()}")
            time.sleep(0.2)  # the next messages queue up meanwhile
            conn.handler = Second

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            order.append("first close")

    listener = reactor.listen(port=0, handler=First)
    runner.start()
    with client(listener.port) as sock:
        sock.sendall(b"a")
        time.sleep(0.05)
        sock.sendall(b"b")
        wait_for(lambda: "second b" in order)
    assert order[:4] == ["first a", "first close", "second open", "second b"]
