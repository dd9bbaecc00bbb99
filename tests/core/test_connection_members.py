"""What a connection tells and offers its handler: peer, protocol, pending, closing.

Each test reads the member over a real socket and checks it against what the
kernel or the other end says, so a member that returned a constant would fail.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from iodine import CloseReason, Connection, Reactor
from iodine.core.settings import MIB

from .conftest import (
    Runner,
    client,
    read_to_end,
    recv_exactly,
    small_window_client,
    wait_for,
)

# Far more than the kernel takes in one send on loopback, even with autotuned
# buffers, so most of it is still queued in the transport when the close comes.
BIG = 4 * MIB


class WriteThenClose:
    """Writes ``BIG`` bytes on open, notes what is unsent, then closes (twice)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.unsent: list[int] = []
        self.open_after_close: list[bool] = []
        self.reasons: list[CloseReason] = []
        self.closed = threading.Event()

    def on_open(self, conn: Connection) -> None:
        conn.write(b"x" * BIG)
        self.unsent.append(conn.pending)
        close = getattr(conn, self.method)
        close()
        close()  # a second call must not close (or call on_close) again
        self.open_after_close.append(conn.is_open)

    def on_close(self, conn: Connection, reason: CloseReason) -> None:
        self.reasons.append(reason)
        self.closed.set()


def test_force_close_closes_at_once_and_drops_unsent_data(
    reactor: Reactor, runner: Runner
) -> None:
    # Above BIG, so the write is not closed as a slow consumer instead.
    reactor.settings.max_pending = 64 * MIB
    handler = WriteThenClose("force_close")
    listener = reactor.listen(port=0, handler=handler)
    runner.start()
    with small_window_client(listener.port) as sock:
        # Closed while the peer has not read a byte: nothing waits for a flush.
        assert handler.closed.wait(5)
        received = read_to_end(sock)
    assert handler.unsent[0] > 0
    assert handler.open_after_close == [False]
    # What the kernel had already taken still arrives; exactly what the
    # transport held back (conn.pending at the close) is dropped.
    assert len(received) == BIG - handler.unsent[0]
    assert handler.reasons == [CloseReason.LOCAL]


def test_close_sends_everything_written_before_closing(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.max_pending = 64 * MIB
    handler = WriteThenClose("close")
    listener = reactor.listen(port=0, handler=handler)
    runner.start()
    with small_window_client(listener.port) as sock:
        # Unlike force_close, the close waits for the peer to take the data.
        assert not handler.closed.wait(0.2)
        received = read_to_end(sock)
    assert handler.unsent[0] > 0
    assert handler.open_after_close == [False]
    assert len(received) == BIG
    assert handler.closed.wait(5)
    assert handler.reasons == [CloseReason.LOCAL]


def test_peer_is_the_clients_address_over_tcp(reactor: Reactor, runner: Runner) -> None:
    peers: list[Any] = []

    class NotePeer:
        def on_open(self, conn: Connection) -> None:
            peers.append(conn.peer)
            conn.write(b"!")

    listener = reactor.listen(port=0, address="127.0.0.1", handler=NotePeer)
    runner.start()
    with client(listener.port) as sock:
        recv_exactly(sock, 1)
        assert peers == [sock.getsockname()]
    assert isinstance(peers[0], tuple)
    assert peers[0][0] == "127.0.0.1"


@pytest.mark.parametrize("client_binds", [False, True], ids=["unnamed", "bound"])
def test_peer_over_unix_is_the_clients_path_or_empty(
    reactor: Reactor, runner: Runner, tmp_path: Any, client_binds: bool
) -> None:
    peers: list[Any] = []

    class NotePeer:
        def on_open(self, conn: Connection) -> None:
            peers.append(conn.peer)
            conn.write(b"!")

    path = str(tmp_path / "server.sock")
    reactor.listen(address=path, handler=NotePeer)
    runner.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        # Clients rarely bind a path; the Unix peer is then unnamed, shown as "".
        client_path = str(tmp_path / "client.sock") if client_binds else ""
        if client_binds:
            sock.bind(client_path)
        sock.connect(path)
        recv_exactly(sock, 1)
    assert peers == [client_path]


def test_raw_connections_say_their_protocol_is_raw(
    reactor: Reactor, runner: Runner
) -> None:
    seen: dict[str, str] = {}
    done = threading.Event()

    class Server:
        def on_open(self, conn: Connection) -> None:
            seen["server"] = conn.protocol
            conn.close()

    class Client:
        def on_open(self, conn: Connection) -> None:
            seen["client"] = conn.protocol

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            done.set()

    listener = reactor.listen(port=0, handler=Server)
    runner.start()
    reactor.connect(f"tcp://127.0.0.1:{listener.port}", handler=Client)
    assert done.wait(5)
    assert seen == {"server": "raw", "client": "raw"}


def test_pending_counts_each_byte_a_non_reading_peer_has_not_taken(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.max_pending = 64 * MIB
    small = 1000
    seen: dict[str, int] = {}
    drained = threading.Event()

    class Writer:
        def on_open(self, conn: Connection) -> None:
            # The first write fills the kernel's buffers; the rest cannot leave
            # the transport while this callback holds the loop, so each later
            # write must add exactly its own length.
            conn.write(b"a" * BIG)
            seen["big"] = conn.pending
            conn.write(b"b" * small)
            seen["small"] = conn.pending
            conn.write("\u00e9")  # a str: counted as its 2 UTF-8 bytes
            seen["str"] = conn.pending

        def on_drained(self, conn: Connection) -> None:
            seen["drained"] = conn.pending
            drained.set()

    listener = reactor.listen(port=0, handler=Writer)
    runner.start()
    total = BIG + small + 2
    with small_window_client(listener.port) as sock:
        wait_for(lambda: "str" in seen)
        assert 0 < seen["big"] < BIG
        assert seen["small"] == seen["big"] + small
        assert seen["str"] == seen["small"] + 2
        assert not drained.is_set()

        # Once the peer has read everything, nothing is pending any more.
        assert len(recv_exactly(sock, total, timeout=10)) == total
        assert drained.wait(5)
    assert seen["drained"] == 0


def test_pending_counts_writes_made_before_a_client_connects(
    reactor: Reactor, runner: Runner
) -> None:
    got = bytearray()

    class Collect:
        def on_message(self, conn: Connection, data: bytes) -> None:
            got.extend(data)

    class Quiet:
        pass

    listener = reactor.listen(port=0, handler=Collect)
    # Before run(): the connection cannot open yet, so the writes wait in it.
    conn = reactor.connect(f"tcp://127.0.0.1:{listener.port}", handler=Quiet)
    conn.write(b"abc")
    conn.write("\u00e9t\u00e9")  # 5 bytes in UTF-8
    assert conn.pending == 8
    runner.start()
    wait_for(lambda: bytes(got) == "abc\u00e9t\u00e9".encode())
    wait_for(lambda: conn.pending == 0)
