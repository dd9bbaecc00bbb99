"""Fixtures that run a private reactor in a background thread.

Each test gets its own :class:`iodine.Reactor`, so tests never share listeners,
timers or settings; the reactor runs exactly as ``iodine.run()`` would, only off
the main thread (which is why signal handlers are not installed).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from iodine import Reactor


class Runner:
    """Starts ``reactor.run()`` in a thread and stops it again."""

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.thread: threading.Thread | None = None
        self.started = threading.Event()
        self.error: BaseException | None = None
        reactor.hooks.add("on_start", self.started.set)

    def start(self) -> None:
        def main() -> None:
            try:
                self.reactor.run()
            except BaseException as exc:  # surfaced by stop()
                self.error = exc

        self.thread = threading.Thread(target=main, name="reactor", daemon=True)
        self.thread.start()
        assert self.started.wait(10), "the reactor did not start"

    def stop(self, timeout: float = 15) -> None:
        if self.thread is None:
            return
        self.reactor.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the reactor did not stop"
        self.thread = None
        if self.error is not None:
            raise self.error


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


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.01)


def recv_exactly(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    """Read ``size`` bytes or fail after ``timeout`` seconds."""
    sock.settimeout(timeout)
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise AssertionError(f"connection closed after {len(chunks)} bytes")
        chunks += chunk
    return bytes(chunks)


@contextmanager
def client(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield sock
    finally:
        sock.close()


def small_window_client(port: int) -> socket.socket:
    """A client whose small receive buffer makes the server's writes back up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    return sock


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the peer closes (a reset counts as closed); fail after ``timeout``."""
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(256 * 1024)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk
