"""Accepting connections in bursts: the loop's one per turn, the listener the rest."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from iodine import Connection, Reactor
from iodine.core import listeners

from .conftest import Runner, recv_exactly, wait_for

BURST = 300


class TurnCounter:
    """Counts loop turns: a callback that puts itself back on the loop."""

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.turns = 0
        self.running = True

    def start(self) -> None:
        self.reactor.call_soon_threadsafe(self._tick)

    def _tick(self) -> None:
        self.turns += 1
        if self.running:
            self.reactor.loop.call_soon(self._tick)


class OpenedAt:
    """Notes the loop turn each connection opened on, and echoes."""

    def __init__(self, counter: TurnCounter) -> None:
        self.counter = counter
        self.turns: list[int] = []

    def on_open(self, conn: Connection) -> None:
        self.turns.append(self.counter.turns)

    def on_message(self, conn: Connection, data: bytes) -> None:
        conn.write(data)


@contextmanager
def loop_held(reactor: Reactor) -> Iterator[None]:
    """Keep the loop thread busy while the block runs, as a loaded server is."""
    gate = threading.Event()
    reactor.call_soon_threadsafe(gate.wait, 10)
    try:
        yield
    finally:
        gate.set()


def connect_burst(stack: ExitStack, address: Any, family: int) -> list[socket.socket]:
    clients = []
    for _ in range(BURST):
        sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        sock.settimeout(5)
        # The kernel completes the handshake and queues the connection; the
        # server's loop is held, so all of them wait to be accepted.
        sock.connect(address)
        clients.append(sock)
    return clients


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_a_burst_is_accepted_in_a_few_loop_turns(
    reactor: Reactor, runner: Runner, tmp_path: Any, kind: str
) -> None:
    counter = TurnCounter(reactor)
    handler = OpenedAt(counter)
    if kind == "tcp":
        listener = reactor.listen(port=0, address="127.0.0.1", handler=handler)
        address: Any = ("127.0.0.1", listener.port)
        family = socket.AF_INET
    else:
        address = str(tmp_path / "burst.sock")
        reactor.listen(address=address, handler=handler)
        family = socket.AF_UNIX
    runner.start()

    with ExitStack() as stack:
        with loop_held(reactor):
            clients = connect_burst(stack, address, family)
            counter.start()
        wait_for(lambda: len(handler.turns) == BURST)
        counter.running = False

        # One connection per turn (libuv's own pace) would take BURST turns.
        batches = -(-BURST // listeners.ACCEPT_BATCH)
        spread = max(handler.turns) - min(handler.turns)
        assert spread <= 3 * batches, handler.turns

        # Connections the listener accepted itself serve like any other.
        for index, sock in enumerate(clients):
            payload = b"%d\n" % index
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload
