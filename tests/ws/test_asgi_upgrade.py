"""The ASGI ``iodine.upgrade`` extension through the real HTTP server: which
requests are offered it, and the native WebSocket, SSE and raw connections
it hands over to; then what server shutdown does to all of them.

Every application here returns right after its ``iodine.upgrade`` send,
which the extension allows: the connection belongs to the handler from then
on (see ``asgi_ws_apps``).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.http.conftest import ResponseReader, Server
from tests.ws.conftest import read_head, recv_exactly

ROOT = Path(__file__).resolve().parents[2]


def start_server(log: Path, **options: Any) -> Server:
    """A server of ``asgi_ws_apps:app`` in its own process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(ROOT))
        return Server(
            "tests.ws.asgi_ws_apps:app", {"address": "127.0.0.1", **options}, log
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the module's tests (but not the shutdown test)."""
    server = start_server(tmp_path_factory.mktemp("servers") / "server.log")
    yield server
    server.stop()


def ws(server: Server, path: str, **kwargs: Any) -> ClientConnection:
    client: ClientConnection = connect(
        f"ws://127.0.0.1:{server.port}{path}", open_timeout=5, **kwargs
    )
    return client


def lines_until(lines: Iterator[str], last: str) -> list[str]:
    """An event stream's next lines, up to and including ``last``."""
    taken = []
    for line in lines:
        taken.append(line)
        if line == last:
            return taken
    raise AssertionError(f"the stream ended before {last!r}: {taken}")


# ------------------------------------------------------- who is offered it


@pytest.mark.parametrize(
    ("headers", "offered"),
    [
        (b"", False),
        (b"accept: text/html\r\n", False),
        (b"accept: text/event-stream\r\n", True),
        (b"accept: text/html, Text/Event-Stream;q=0.9\r\n", True),
        (b"upgrade: foo\r\nconnection: keep-alive, Upgrade\r\n", True),
        # RFC 9110 section 7.8: an Upgrade not named in Connection is ignored.
        (b"upgrade: foo\r\n", False),
    ],
)
def test_the_extension_is_offered_to_upgradable_requests_only(
    server: Server, headers: bytes, offered: bool
) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /scope HTTP/1.1\r\nhost: x\r\n" + headers + b"\r\n")
        response = ResponseReader(sock).read()
    assert response.status == 200
    scope = json.loads(response.body)
    assert scope["type"] == "http"
    assert ("iodine.upgrade" in scope["extensions"]) is offered
    # The extensions every request has are still there.
    assert "http.response.trailers" in scope["extensions"]


def test_websocket_handshakes_are_offered_it(server: Server) -> None:
    with ws(server, "/scope") as client:
        scope = json.loads(client.recv(timeout=5))
    assert "iodine.upgrade" in scope["extensions"]


def test_upgrading_a_plain_request_is_an_error(server: Server) -> None:
    response = httpx.get(server.url("/upgrade-anyway"), timeout=5)
    assert response.status_code == 500
    log = server.wait_for_log("'iodine.upgrade' at this point")
    assert "RuntimeError: unexpected ASGI message 'iodine.upgrade'" in log


# ------------------------------------------------------------ the handlers


def test_a_websocket_goes_to_the_native_handler(server: Server) -> None:
    with ws(server, "/native?t=ws", subprotocols=["n1", "n2"]) as client:
        assert client.subprotocol == "n1"
        assert client.response is not None
        assert client.response.headers["x-native"] == "yes"
        # on_open: conn.protocol, and conn.scope is the request's scope.
        assert client.recv(timeout=5) == "open websocket websocket /native"
        assert client.recv(timeout=5) == "subprotocol n1"
        client.send("text")
        assert client.recv(timeout=5) == "text"
        client.send(b"\x00binary")
        assert client.recv(timeout=5) == b"\x00binary"
        client.close(4003, "done")
    mark = "MARK native-close /native?t=ws PEER 4003"
    assert mark in server.wait_for_log(mark)


def test_a_native_handler_closes_with_its_code(server: Server) -> None:
    with ws(server, "/native?t=close") as client:
        client.recv(timeout=5)
        client.recv(timeout=5)
        client.send("close please")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 4002
        assert client.close_reason == "native bye"
    mark = "MARK native-close /native?t=close LOCAL 4002"
    assert mark in server.wait_for_log(mark)


def test_an_event_stream_goes_to_the_native_handler(server: Server) -> None:
    with httpx.stream(
        "GET",
        server.url("/sse?t=stream"),
        headers={"accept": "text/html, text/event-stream;q=0.9"},
        timeout=5,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-upgraded"] == "yes"
        # The application's Content-Length would end the stream: dropped.
        assert "content-length" not in response.headers
        assert lines_until(response.iter_lines(), "data: second") == [
            "data: open sse http /sse",
            "",
            "id: 2",
            "event: tick",
            "data: second",
        ]
    mark = "MARK native-close /sse?t=stream PEER"
    assert mark in server.wait_for_log(mark)


def test_another_protocol_goes_to_the_native_handler_as_raw_bytes(
    server: Server,
) -> None:
    request = (
        b"GET /raw HTTP/1.1\r\nhost: x\r\nupgrade: foo/2\r\nconnection: Upgrade\r\n\r\n"
    )
    greeting = b"open raw http /raw\n"
    with server.connect() as sock:
        # Bytes of the new protocol may come with the request head.
        sock.sendall(request + b"early")
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"\r\nupgrade: foo/2\r\n" in head
        assert b"\r\nx-upgraded: yes\r\n" in head
        assert b"content-length" not in head
        assert recv_exactly(sock, len(greeting) + 5) == greeting + b"EARLY"
        sock.sendall(b"later")
        assert recv_exactly(sock, 5) == b"LATER"
    mark = "MARK native-close /raw? PEER"
    assert mark in server.wait_for_log(mark)


# ---------------------------------------------------------------- memory


def test_upgraded_connections_let_go_of_the_http_side(tmp_path: Path) -> None:
    # A fresh server, so no other test's keep-alive connection is counted.
    server = start_server(tmp_path / "server.log")
    try:
        with ExitStack() as stack:
            for path in ("/native", "/echo", "/sse"):
                for _ in range(3):
                    if path == "/sse":
                        stack.enter_context(
                            httpx.stream(
                                "GET",
                                server.url(path),
                                headers={"accept": "text/event-stream"},
                                timeout=5,
                            )
                        )
                    else:
                        client = stack.enter_context(ws(server, path))
                        client.send("hi")
                        client.recv(timeout=5)
            census = stack.enter_context(ws(server, "/census"))
            census.send("count")
            alive = json.loads(census.recv(timeout=5))
        # No parser, exchange or HTTP protocol outlives its upgrade.
        assert alive == {"HttpProtocol": 0, "WebSocketExchange": 0, "AsgiExchange": 0}
    finally:
        server.stop()


# --------------------------------------------------------------- shutdown


def test_shutdown_closes_websockets_with_1001_and_ends_streams(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "server.log")
    try:
        with ExitStack() as stack:
            asgi = stack.enter_context(ws(server, "/echo?t=shutdown"))
            asgi.send("hi")
            assert asgi.recv(timeout=5) == "hi"
            native = stack.enter_context(ws(server, "/native?t=shutdown"))
            native.recv(timeout=5)
            native.recv(timeout=5)
            stream = stack.enter_context(
                httpx.stream(
                    "GET",
                    server.url("/sse?t=shutdown"),
                    headers={"accept": "text/event-stream"},
                    timeout=10,
                )
            )
            lines = stream.iter_lines()
            lines_until(lines, "data: second")

            server.proc.send_signal(signal.SIGTERM)

            for client in (asgi, native):
                with pytest.raises(ConnectionClosed):
                    client.recv(timeout=10)
                assert client.close_code == 1001
            # on_shutdown's last event, then the end of the stream (no error).
            assert list(lines) == [
                "",
                "event: shutdown",
                "data: bye",
                "",
            ]
        assert server.proc.wait(10) == 0
        log = server.log()
        assert "MARK asgi-disconnect /echo?t=shutdown 1001 ''" in log
        assert "MARK native-close /native?t=shutdown SHUTDOWN 1001" in log
        assert "MARK native-close /sse?t=shutdown SHUTDOWN" in log
    finally:
        server.stop()
