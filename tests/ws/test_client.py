"""The ws:// client, against a websockets package server and against ours."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.sync.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from iodine import CloseReason, Reactor
from iodine.http.websocket.handshake import HandshakeError
from tests.ws.conftest import Recorder, Runner, deflate_answer, wait_for


class ForeignServer:
    """A websockets echo server in a thread; records what it saw."""

    def __init__(self, **options: Any) -> None:
        self.headers: dict[str, str] = {}
        self.extensions: list[str] = []
        self.close_codes: list[int | None] = []
        self.server: Server = serve(
            self.handle, "127.0.0.1", 0, select_subprotocol=self.select, **options
        )
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def select(
        conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        # websockets refuses a client that offers none of its subprotocols;
        # this server accepts one with none, like most.
        return Subprotocol("chat") if "chat" in offered else None

    def handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        self.headers = {
            name.lower(): value for name, value in conn.request.headers.raw_items()
        }
        self.extensions = [str(ext.name) for ext in conn.protocol.extensions]
        try:
            for message in conn:
                if message == "close me":
                    conn.close(4002, "as you wish")
                    break
                conn.send(message)
        except ConnectionClosed:  # any code but 1000 and 1001 ends the loop so
            pass
        self.close_codes.append(conn.close_code)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    try:
        yield server
    finally:
        server.stop()


class Chatter(Recorder):
    """Sends its script on open; closes after the last echo."""

    def __init__(self, script: list[Any], close: tuple[int, str] = (1000, "")):
        super().__init__(echo=False)
        self.script = script
        self.close_with = close

    def on_open(self, conn: Any) -> None:
        super().on_open(conn)
        for message in self.script:
            conn.write(message)

    def on_message(self, conn: Any, data: Any) -> None:
        super().on_message(conn, data)
        if len(self.messages()) == len(self.script):
            conn.close(*self.close_with)


def test_client_talks_to_a_websockets_server(
    reactor: Reactor, runner: Runner, foreign: ForeignServer
) -> None:
    chatter = Chatter(["hello", b"\x00\x01", "y" * 70000], close=(4000, "thanks"))
    runner.start()
    conn = reactor.connect(
        f"ws://127.0.0.1:{foreign.port}/path?q=1",
        handler=chatter,
        headers={"x-token": "secret"},
        subprotocols=["chat"],
    )
    assert chatter.close_reason() is CloseReason.LOCAL
    assert chatter.messages() == ["hello", b"\x00\x01", "y" * 70000]
    assert conn.subprotocol == "chat"
    assert foreign.headers["x-token"] == "secret"
    wait_for(lambda: foreign.close_codes == [4000])


# Text that compresses well, and bytes that do not compress at all.
COMPRESSIBLE = "iodine " * 20_000
RANDOM = bytes(random.Random(7).randbytes(50_000))


def echo_compressed(
    reactor: Reactor, runner: Runner, foreign: ForeignServer, script: list[Any]
) -> Any:
    """Send ``script`` with compression offered; check every echo came back."""
    chatter = Chatter(script)
    runner.start()
    conn = reactor.connect(
        f"ws://127.0.0.1:{foreign.port}/", handler=chatter, compression=True
    )
    assert chatter.close_reason() is CloseReason.LOCAL, conn.error
    assert chatter.messages() == script
    return conn


def test_client_offers_no_compression_unless_asked(
    reactor: Reactor, runner: Runner, foreign: ForeignServer
) -> None:
    chatter = Chatter(["plain"])
    runner.start()
    conn = reactor.connect(f"ws://127.0.0.1:{foreign.port}/", handler=chatter)
    assert chatter.close_reason() is CloseReason.LOCAL
    assert "sec-websocket-extensions" not in foreign.headers
    assert foreign.extensions == []
    assert type(conn).__name__ == "WebSocketClient"


def test_client_compresses_with_a_websockets_server(
    reactor: Reactor, runner: Runner, foreign: ForeignServer
) -> None:
    # websockets accepts permessage-deflate by default and then compresses
    # every message it sends: each echo below was inflated by the client,
    # and each message the client sent was inflated by websockets.
    conn = echo_compressed(
        reactor, runner, foreign, [COMPRESSIBLE, RANDOM, "short", b""]
    )
    assert foreign.headers["sec-websocket-extensions"] == (
        "permessage-deflate; client_max_window_bits, "
        "permessage-deflate; client_max_window_bits; client_no_context_takeover"
    )
    assert foreign.extensions == ["permessage-deflate"]
    assert type(conn).__name__ == "DeflateWebSocketClient"


def test_client_keeps_a_reset_window_the_server_asked_for(
    reactor: Reactor, runner: Runner
) -> None:
    # server_no_context_takeover: the server starts each message with an
    # empty window, and so must the client's inflater (and the other way).
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=9,
    )
    foreign = ForeignServer(extensions=[factory])
    try:
        conn = echo_compressed(
            reactor,
            runner,
            foreign,
            [COMPRESSIBLE, COMPRESSIBLE, "again " * 500, COMPRESSIBLE],
        )
        answer = dict(conn.response_headers)[b"sec-websocket-extensions"]
        assert b"server_no_context_takeover" in answer
        assert b"client_no_context_takeover" in answer
    finally:
        foreign.stop()


@pytest.mark.parametrize(
    "answer",
    [
        b"permessage-deflate; client_max_window_bits=8",  # zlib cannot
        b"permessage-deflate; mystery=1",
        b"permessage-deflate, permessage-deflate",
        b"x-webkit-deflate-frame",
    ],
)
def test_a_compression_answer_that_breaks_the_offer_fails_the_handshake(
    reactor: Reactor, runner: Runner, answer: bytes
) -> None:
    class Answers:
        def on_message(self, conn: Any, data: bytes) -> None:
            conn.write(deflate_answer(data, answer))

    listener = reactor.listen(port=0, handler=Answers)
    chatter = Recorder()
    conn = reactor.connect(
        f"ws://127.0.0.1:{listener.port}/", handler=chatter, compression=True
    )
    runner.start()
    assert chatter.close_reason() is CloseReason.CONNECT_FAILED
    assert isinstance(conn.error, HandshakeError)
    assert not chatter.opened.is_set()


def test_client_sees_the_server_close_code(
    reactor: Reactor, runner: Runner, foreign: ForeignServer
) -> None:
    chatter = Chatter(["close me"])
    runner.start()
    conn = reactor.connect(f"ws://127.0.0.1:{foreign.port}/", handler=chatter)
    assert chatter.close_reason() is CloseReason.PEER, conn.error
    assert (conn.close_code, conn.close_reason) == (4002, "as you wish")


def test_writes_before_the_handshake_are_sent_after_it(
    reactor: Reactor, runner: Runner, foreign: ForeignServer
) -> None:
    chatter = Chatter([])
    chatter.script = ["early"]  # counted by on_message, written below
    chatter.on_open = lambda conn: Recorder.on_open(chatter, conn)  # type: ignore[method-assign]
    conn = reactor.connect(f"ws://127.0.0.1:{foreign.port}/", handler=chatter)
    conn.write("early")  # before run: held until the 101
    runner.start()
    assert chatter.close_reason() is CloseReason.LOCAL
    assert chatter.messages() == ["early"]


def test_client_talks_to_our_own_server(reactor: Reactor, runner: Runner) -> None:
    server = Recorder()
    listener = reactor.listen(service="ws-test", handler=lambda: server, port=0)
    chatter = Chatter(["one", b"two"], close=(4003, "done"))
    reactor.connect(f"ws://127.0.0.1:{listener.port}/", handler=chatter)
    runner.start()
    assert chatter.close_reason() is CloseReason.LOCAL
    assert chatter.messages() == ["one", b"two"]
    assert server.close_reason() is CloseReason.PEER
    assert server.conn.close_code == 4003
    assert server.conn.close_reason == "done"


def test_client_gets_1001_when_our_server_shuts_down(
    reactor: Reactor, runner: Runner
) -> None:
    server = Recorder()
    listener = reactor.listen(service="ws-test", handler=lambda: server, port=0)
    chatter = Recorder(echo=False)
    conn = reactor.connect(f"ws://127.0.0.1:{listener.port}/", handler=chatter)
    runner.start()
    assert chatter.opened.wait(5)
    assert server.opened.wait(5)
    runner.stop()
    # Both ends are on the stopping reactor: each sends 1001, each sees it.
    assert server.close_reason() is CloseReason.SHUTDOWN
    assert chatter.close_reason() is CloseReason.SHUTDOWN
    assert conn.close_code == 1001


def test_failed_connect_calls_on_close(reactor: Reactor, runner: Runner) -> None:
    chatter = Recorder()
    runner.start()
    # A listener closed at once leaves a port nothing listens on.
    listener = reactor.listen(port=0, handler=Recorder)
    port = listener.port
    listener.close()
    conn = reactor.connect(f"ws://127.0.0.1:{port}/", handler=chatter)
    assert chatter.close_reason() is CloseReason.CONNECT_FAILED
    assert isinstance(conn.error, OSError)
    assert not chatter.opened.is_set()


def test_refused_handshake_calls_on_close(reactor: Reactor, runner: Runner) -> None:
    class NotWebSocket:
        def on_message(self, conn: Any, data: bytes) -> None:
            conn.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")

    listener = reactor.listen(port=0, handler=NotWebSocket)
    chatter = Recorder()
    conn = reactor.connect(f"ws://127.0.0.1:{listener.port}/", handler=chatter)
    runner.start()
    assert chatter.close_reason() is CloseReason.CONNECT_FAILED
    assert isinstance(conn.error, HandshakeError)
    assert "404" in str(conn.error)


def test_wss_says_tls_is_not_available(reactor: Reactor) -> None:
    with pytest.raises(NotImplementedError, match="TLS"):
        reactor.connect("wss://example.com/", handler=Recorder())


def test_unknown_options_are_refused(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="proxy"):
        reactor.connect("ws://127.0.0.1:1/", handler=Recorder(), proxy="x")
