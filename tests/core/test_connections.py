"""Connections over real sockets: echo, Unix sockets, clients, close reasons."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import iodine
from iodine import CloseReason, Connection, ListenError, MissingPackageError, Reactor

from .conftest import Runner, client, recv_exactly, wait_for


class Echo:
    def on_message(self, conn: Connection, data: bytes) -> None:
        conn.write(data)


class Recorder:
    """Records every callback as (name, argument) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.closed = threading.Event()

    def on_open(self, conn: Connection) -> None:
        self.events.append(("open", None))

    def on_message(self, conn: Connection, data: bytes) -> None:
        self.events.append(("message", data))

    def on_close(self, conn: Connection, reason: CloseReason) -> None:
        self.events.append(("close", reason))
        self.closed.set()


def test_tcp_echo(reactor: Reactor, runner: Runner) -> None:
    listener = reactor.listen(port=0, address="127.0.0.1", handler=Echo)
    runner.start()
    with client(listener.port) as sock:
        for size in (1, 100, 70_000):
            payload = os.urandom(size)
            sock.sendall(payload)
            assert recv_exactly(sock, size) == payload


def test_unix_socket_echo(reactor: Reactor, runner: Runner, tmp_path: Any) -> None:
    path = str(tmp_path / "echo.sock")
    listener = reactor.listen(address=path, handler=Echo)
    assert listener.url == f"unix://{path}"
    runner.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    with sock:
        sock.sendall(b"over unix")
        assert recv_exactly(sock, 9) == b"over unix"
    runner.stop()
    assert not os.path.exists(path), "the socket file is removed on close"


def test_unix_socket_url(reactor: Reactor, runner: Runner, tmp_path: Any) -> None:
    path = str(tmp_path / "url.sock")
    reactor.listen(url=f"unix://{path}", handler=Echo)
    runner.start()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    with sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"


def test_stale_unix_socket_is_replaced(reactor: Reactor, tmp_path: Any) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # leaves the file behind, with nobody listening
    listener = reactor.listen(address=path, handler=Echo)
    assert listener.is_open
    listener.close()


def test_live_unix_socket_is_not_stolen(reactor: Reactor, tmp_path: Any) -> None:
    path = str(tmp_path / "live.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen()
    with live, pytest.raises(ListenError, match="another server"):
        reactor.listen(address=path, handler=Echo)


def test_port_in_use_is_a_clear_error(reactor: Reactor) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with (
        taken,
        pytest.raises(ListenError, match=r"cannot listen on tcp://127\.0\.0\.1"),
    ):
        reactor.listen(port=taken.getsockname()[1], handler=Echo)


def test_client_and_server_in_one_process(reactor: Reactor, runner: Runner) -> None:
    listener = reactor.listen(port=0, handler=Echo)
    replies: list[bytes] = []
    done = threading.Event()

    class Client:
        def on_open(self, conn: Connection) -> None:
            conn.write(b"ping")

        def on_message(self, conn: Connection, data: bytes) -> None:
            replies.append(data)
            conn.close()

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            replies.append(reason.encode())
            done.set()

    # Made before run(): it connects when the reactor starts.
    reactor.connect(f"tcp://127.0.0.1:{listener.port}", handler=Client)
    runner.start()
    assert done.wait(5)
    assert replies == [b"ping", b"local close"]


def test_unix_client_and_server_in_one_process(
    reactor: Reactor, runner: Runner, tmp_path: Any
) -> None:
    path = str(tmp_path / "echo.sock")
    server_reasons: list[CloseReason] = []
    replies = bytearray()
    client_reasons: list[CloseReason] = []
    client_closed = threading.Event()

    class EchoNotingClose(Echo):
        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            server_reasons.append(reason)

    class Client:
        def on_open(self, conn: Connection) -> None:
            conn.write(b"round trip")

        def on_message(self, conn: Connection, data: bytes) -> None:
            replies.extend(data)
            if len(replies) >= 10:
                conn.close()

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            client_reasons.append(reason)
            client_closed.set()

    reactor.listen(address=path, handler=EchoNotingClose)
    runner.start()
    # Made while running, from another thread: it connects at once.
    conn = reactor.connect(f"unix://{path}", handler=Client)
    assert client_closed.wait(5)
    assert bytes(replies) == b"round trip"
    assert client_reasons == [CloseReason.LOCAL]
    assert conn.peer == path
    # The client's close reaches the server as the peer closing.
    wait_for(lambda: server_reasons)
    assert server_reasons == [CloseReason.PEER]


def test_client_writes_before_open_are_sent(reactor: Reactor, runner: Runner) -> None:
    listener = reactor.listen(port=0, handler=Echo)
    runner.start()
    got = bytearray()

    class Client:
        def on_message(self, conn: Connection, data: bytes) -> None:
            got.extend(data)

    conn = reactor.connect(url=f"raw://127.0.0.1:{listener.port}", handler=Client)
    assert conn.write(b"early ")
    assert conn.write("bird")  # str goes out as UTF-8
    wait_for(lambda: bytes(got) == b"early bird")


def test_failed_connect_calls_on_close(reactor: Reactor, runner: Runner) -> None:
    # A port nobody listens on: bind one, then close it.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    handler = Recorder()
    runner.start()
    conn = reactor.connect(address="127.0.0.1", port=port, handler=handler)
    assert handler.closed.wait(5)
    assert handler.events == [("close", CloseReason.CONNECT_FAILED)]
    assert isinstance(conn.error, ConnectionRefusedError)
    assert not conn.is_open


def test_close_reasons_and_exactly_one_on_close(
    reactor: Reactor, runner: Runner
) -> None:
    handlers: list[Recorder] = []

    def factory() -> Recorder:
        handlers.append(Recorder())
        return handlers[-1]

    listener = reactor.listen(port=0, handler=factory)
    runner.start()

    # Peer closes.
    with client(listener.port) as sock:
        sock.sendall(b"hi")
        wait_for(lambda: handlers and ("message", b"hi") in handlers[0].events)
    assert handlers[0].closed.wait(5)
    assert handlers[0].events == [
        ("open", None),
        ("message", b"hi"),
        ("close", CloseReason.PEER),
    ]

    # Local close: pending data is flushed first.
    with client(listener.port) as sock:
        wait_for(lambda: len(handlers) == 2)
        conn = next(c for c in reactor.connections if isinstance(c, Connection))
        conn.write(b"bye")
        conn.close()
        assert recv_exactly(sock, 3) == b"bye"
        assert sock.recv(1) == b""
    assert handlers[1].closed.wait(5)
    assert handlers[1].events[-1] == ("close", CloseReason.LOCAL)
    assert [name for name, _ in handlers[1].events].count("close") == 1


def test_handler_class_object_and_factory(reactor: Reactor, runner: Runner) -> None:
    shared = Echo()
    made: list[object] = []

    class PerConnection(Echo):
        def __init__(self) -> None:
            made.append(self)

    def factory() -> PerConnection:
        return PerConnection()

    listeners = [
        reactor.listen(port=0, handler=shared),
        reactor.listen(port=0, handler=PerConnection),
        reactor.listen(port=0, handler=factory),
    ]
    runner.start()
    for listener in listeners:
        for _ in range(2):
            with client(listener.port) as sock:
                sock.sendall(b"x")
                assert recv_exactly(sock, 1) == b"x"
    assert len(made) == 4
    assert len({id(handler) for handler in made}) == 4


def test_bad_handler_is_rejected_at_listen(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="handler"):
        reactor.listen(port=0, handler=42)


def test_tls_listen_says_tls_is_not_available_yet() -> None:
    # Through the public function: it refuses before binding anything, so the
    # process-wide reactor is left as it was.
    with pytest.raises(NotImplementedError, match=r"TLS .*not available yet"):
        iodine.listen(port=0, handler=Echo, tls={"cert": "server.pem"})
    assert iodine.reactor.listeners == []


def test_unknown_service_names_the_problem(reactor: Reactor) -> None:
    with pytest.raises(ValueError, match="unknown service 'gopher'"):
        reactor.listen(port=0, handler=Echo, service="gopher")


def test_pubsub_methods_say_what_to_install(reactor: Reactor) -> None:
    conn = Connection(reactor, Echo)
    for method in (conn.subscribe, conn.unsubscribe, conn.publish):
        with pytest.raises(MissingPackageError, match="pip install iodine-pubsub"):
            method("chat")


def test_listener_close_stops_accepting(reactor: Reactor, runner: Runner) -> None:
    listener = reactor.listen(port=0, handler=Echo)
    runner.start()
    with client(listener.port) as sock:
        listener.close()
        # The open connection carries on...
        sock.sendall(b"still here")
        assert recv_exactly(sock, 10) == b"still here"
    # ...but new ones are refused.
    wait_for(lambda: not listener.is_open)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=2).close()


def test_listen_while_running(reactor: Reactor, runner: Runner) -> None:
    runner.start()
    listener = reactor.listen(port=0, handler=Echo)  # from another thread

    def echoed() -> bool:
        try:
            with client(listener.port) as sock:
                sock.sendall(b"late")
                return recv_exactly(sock, 4) == b"late"
        except OSError:
            return False

    wait_for(echoed)


def test_unknown_client_scheme_is_a_clear_error(reactor: Reactor) -> None:
    with pytest.raises(ValueError, match="cannot open gopher:// URLs"):
        reactor.connect("gopher://example:70", handler=Echo)


def test_raw_connect_rejects_unknown_options(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="subprotocols"):
        reactor.connect("tcp://127.0.0.1:1", handler=Echo, subprotocols=["chat"])
