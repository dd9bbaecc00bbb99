"""Native WebSocket connections over real sockets, driven by the websockets
package's client and by raw sockets where a peer must misbehave."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from iodine import CloseReason, Reactor
from iodine.http.websocket import frames
from tests.ws.conftest import (
    Recorder,
    Runner,
    handshake_request,
    open_socket,
    read_frame,
    read_head,
    read_until_closed,
    wait_for,
)


def serve(reactor: Reactor, runner: Runner, handler: object, **options: Any) -> int:
    listener = reactor.listen(service="ws-test", handler=handler, port=0, **options)
    runner.start()
    return listener.port


@pytest.fixture
def echo(reactor: Reactor, runner: Runner) -> tuple[Recorder, int]:
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder, subprotocols=["a", "b"])
    return recorder, port


def ws(port: int, **kwargs: Any) -> ClientConnection:
    client: ClientConnection = connect(
        f"ws://127.0.0.1:{port}/chat?x=1", open_timeout=5, **kwargs
    )
    return client


def test_text_arrives_as_str_and_binary_as_bytes(
    echo: tuple[Recorder, int],
) -> None:
    recorder, port = echo
    with ws(port) as client:
        client.send("héllo")
        assert client.recv(timeout=5) == "héllo"
        client.send(b"\x00\xff")
        assert client.recv(timeout=5) == b"\x00\xff"
        client.send("x" * 70000)
        assert client.recv(timeout=5) == "x" * 70000
    assert recorder.messages() == ["héllo", b"\x00\xff", "x" * 70000]
    assert recorder.conn.protocol == "websocket"
    assert recorder.conn.scope["path"] == "/chat?x=1"


def test_fragmented_messages_are_reassembled(echo: tuple[Recorder, int]) -> None:
    _, port = echo
    with ws(port) as client:
        client.send(["frag", "ment", "ed"])
        assert client.recv(timeout=5) == "fragmented"
        client.send([b"a", b"b"])
        assert client.recv(timeout=5) == b"ab"


def test_subprotocol_follows_the_server_preference(
    echo: tuple[Recorder, int],
) -> None:
    recorder, port = echo
    with ws(port, subprotocols=["b", "a"]) as client:
        assert client.subprotocol == "a"
        assert client.response is not None
        assert client.response.headers["x-test"] == "ws"
        assert recorder.opened.wait(5)
        assert recorder.conn.subprotocol == "a"


def test_client_pings_are_answered(echo: tuple[Recorder, int]) -> None:
    _, port = echo
    with ws(port) as client:
        assert client.ping(b"are you there").wait(5)


def test_peer_close_code_and_reason_reach_the_handler(
    echo: tuple[Recorder, int],
) -> None:
    recorder, port = echo
    with ws(port) as client:
        client.close(4000, "bye now")
        assert client.close_code == 4000  # the server echoed it
    assert recorder.close_reason() is CloseReason.PEER
    assert recorder.conn.close_code == 4000
    assert recorder.conn.close_reason == "bye now"


def test_server_close_sends_code_and_reason(reactor: Reactor, runner: Runner) -> None:
    class Closer(Recorder):
        def on_message(self, conn: Any, data: Any) -> None:
            conn.write("last words")
            conn.close(4001, "done")
            conn.write("dropped")

    recorder = Closer()
    port = serve(reactor, runner, lambda: recorder)
    with ws(port) as client:
        client.send("close please")
        assert client.recv(timeout=5) == "last words"
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 4001
        assert client.close_reason == "done"
    assert recorder.close_reason() is CloseReason.LOCAL
    assert recorder.conn.close_code == 4001  # the client's echo


def test_message_over_the_limit_closes_with_1009(
    reactor: Reactor, runner: Runner
) -> None:
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder, max_message=1000)
    with ws(port) as client:
        client.send("x" * 1000)
        assert client.recv(timeout=5) == "x" * 1000
        client.send(["x" * 600, "x" * 600])
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1009
    assert recorder.close_reason() is CloseReason.ERROR
    assert recorder.conn.error.code == 1009


def test_too_big_frame_in_the_first_read_closes_with_1009(
    reactor: Reactor, runner: Runner
) -> None:
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder, max_message=100)
    request, _ = handshake_request()
    small = frames.encode(frames.TEXT, b"ok", mask=frames.new_mask())
    big = frames.encode(frames.BINARY, b"x" * 101, mask=frames.new_mask())
    with open_socket(port) as sock:
        sock.sendall(request + small + big)
        assert read_head(sock).startswith(b"HTTP/1.1 101 ")
        assert read_frame(sock) == (0x81, b"ok")  # the frame before is echoed
        first, payload = read_frame(sock)
        assert first == 0x88
        assert int.from_bytes(payload[:2], "big") == 1009
        assert read_until_closed(sock) == b""
    assert recorder.messages() == ["ok"]


def test_invalid_utf8_closes_with_1007(echo: tuple[Recorder, int]) -> None:
    recorder, port = echo
    request, _ = handshake_request()
    with open_socket(port) as sock:
        sock.sendall(request)
        read_head(sock)
        sock.sendall(frames.encode(frames.TEXT, b"\xff\xfe", mask=frames.new_mask()))
        first, payload = read_frame(sock)
        assert (first, payload[:2]) == (0x88, (1007).to_bytes(2, "big"))
    assert recorder.close_reason() is CloseReason.ERROR


def test_unsupported_version_gets_426_naming_13(echo: tuple[Recorder, int]) -> None:
    _, port = echo
    request, _ = handshake_request()
    request = request.replace(b"version: 13", b"version: 8")
    with open_socket(port) as sock:
        sock.sendall(request)
        response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13\r\n" in response


def test_shutdown_closes_with_1001(reactor: Reactor, runner: Runner) -> None:
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder)
    with ws(port) as client:
        client.send("hi")
        assert client.recv(timeout=5) == "hi"
        stopper = threading.Thread(target=runner.stop)
        stopper.start()
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1001
        stopper.join(10)
    assert recorder.close_reason() is CloseReason.SHUTDOWN
    assert ("shutdown", None) in recorder.events


def test_silent_peer_is_pinged_then_closed(reactor: Reactor, runner: Runner) -> None:
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder, ping=1)
    request, _ = handshake_request()
    with open_socket(port) as sock:
        sock.sendall(request)
        read_head(sock)
        # An answering peer stays: two pings, each answered with a pong.
        for _ in range(2):
            assert read_frame(sock) == (0x89, b"")
            sock.sendall(frames.encode(frames.PONG, b"", mask=frames.new_mask()))
        # Then silence: one more ping, and the connection is closed.
        assert read_frame(sock) == (0x89, b"")
        first, payload = read_frame(sock)
        assert (first, payload[:2]) == (0x88, (1011).to_bytes(2, "big"))
        assert read_until_closed(sock) == b""
    assert recorder.close_reason() is CloseReason.TIMEOUT


def test_writes_from_other_threads_arrive_in_order(
    reactor: Reactor, runner: Runner
) -> None:
    class Pusher(Recorder):
        def on_message(self, conn: Any, data: Any) -> None:
            def push() -> None:
                for i in range(100):
                    conn.write(f"m{i}")
                conn.close()

            threading.Thread(target=push).start()

    recorder = Pusher()
    port = serve(reactor, runner, lambda: recorder)
    with ws(port) as client:
        client.send("go")
        got = [client.recv(timeout=5) for _ in range(100)]
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
    assert got == [f"m{i}" for i in range(100)]
    assert client.close_code == 1000


def test_threaded_callbacks_keep_message_order(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.callbacks = "threads"
    recorder = Recorder()
    port = serve(reactor, runner, lambda: recorder)
    with ws(port) as client:
        for i in range(50):
            client.send(f"{i}")
        got = [client.recv(timeout=5) for _ in range(50)]
    assert got == [f"{i}" for i in range(50)]
    wait_for(recorder.closed.is_set)
