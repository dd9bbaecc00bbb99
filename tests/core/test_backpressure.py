"""Backpressure over real sockets: a peer that stops reading."""

from __future__ import annotations

import logging
import threading

import pytest

from iodine import CloseReason, Connection, Reactor, Timer
from iodine.core.settings import MIB

from .conftest import Runner, recv_exactly, small_window_client, wait_for


def test_reading_pauses_until_the_peer_drains(reactor: Reactor, runner: Runner) -> None:
    reactor.settings.max_pending = 64 * MIB
    size = 8 * MIB
    events: list[str] = []
    drained = threading.Event()

    class Flood:
        def on_open(self, conn: Connection) -> None:
            conn.write(b"x" * size)
            events.append(f"pending {conn.pending > 0}")

        def on_message(self, conn: Connection, data: bytes) -> None:
            events.append("message")

        def on_drained(self, conn: Connection) -> None:
            events.append("drained")
            drained.set()

    listener = reactor.listen(port=0, handler=Flood)
    runner.start()
    sock = small_window_client(listener.port)
    with sock:
        wait_for(lambda: events)
        sock.sendall(b"?")
        # While the peer does not read, the server does not read from it either.
        assert not drained.wait(0.3)
        assert "message" not in events
        assert len(recv_exactly(sock, size, timeout=20)) == size
        assert drained.wait(5)
        wait_for(lambda: "message" in events)
    assert events == ["pending True", "drained", "message"]


def test_slow_consumer_is_closed_and_logged(
    reactor: Reactor, runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    reactor.settings.max_pending = 1 * MIB
    chunk = b"y" * (256 * 1024)
    reasons: list[CloseReason] = []

    class Producer:
        timer: Timer

        def on_open(self, conn: Connection) -> None:
            self.timer = reactor.run_every(5, lambda: conn.write(chunk))

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            self.timer.cancel()
            reasons.append(reason)

    listener = reactor.listen(port=0, handler=Producer)
    runner.start()
    with caplog.at_level(logging.WARNING, logger="iodine.core"):
        sock = small_window_client(listener.port)
        with sock:
            wait_for(lambda: reasons, timeout=10)
    assert reasons == [CloseReason.SLOW_CONSUMER]
    assert "slow consumer" in caplog.text
