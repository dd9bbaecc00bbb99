"""The ASGI ``websocket`` scope (spec 2.4) through the real HTTP server, with
the websockets client, and raw sockets where the client must misbehave.

The applications are in ``asgi_ws_apps``; each server runs in its own
process, and what only the application sees (a disconnect code) reaches the
tests as a ``MARK`` line in the server's log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from iodine.http.websocket import frames
from tests.http.conftest import ResponseReader, Server, read_until_close
from tests.ws.conftest import ServerPool, handshake_request, read_frame, read_head


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """``servers(name="app", **options)``: a server of ``asgi_ws_apps.<name>``,
    shared by the module's tests that ask for the same one."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))

    def start(name: str = "app", **options: Any) -> Server:
        return pool.get(f"tests.ws.asgi_ws_apps:{name}", **options)

    yield start
    pool.stop()


@pytest.fixture
def server(servers: Callable[..., Server]) -> Server:
    return servers()


def ws(server: Server, path: str, **kwargs: Any) -> ClientConnection:
    client: ClientConnection = connect(
        f"ws://127.0.0.1:{server.port}{path}", open_timeout=5, **kwargs
    )
    return client


def refusal(server: Server, path: str) -> InvalidStatus:
    """What the websockets client reports when the handshake is answered
    with anything but 101."""
    with pytest.raises(InvalidStatus) as caught:
        ws(server, path)
    return caught.value


def assert_still_serving(server: Server) -> None:
    with ws(server, "/echo") as client:
        client.send("still here")
        assert client.recv(timeout=5) == "still here"


# ------------------------------------------------------------------ scope


def test_scope_describes_the_handshake(server: Server) -> None:
    with ws(
        server,
        "/scope/caf%C3%A9?a=1&b=%20",
        subprotocols=["x", "y"],
        additional_headers={"X-Custom": "yes"},
    ) as client:
        scope = json.loads(client.recv(timeout=5))
        local = client.local_address

    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/café"
    assert scope["raw_path"] == "/scope/caf%C3%A9"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["x", "y"]
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["extensions"] == ["iodine.upgrade", "websocket.http.response"]
    assert "method" not in scope["keys"]

    # The request's headers as received, names lower-cased.
    headers = dict(scope["headers"])
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "yes"
    assert headers["upgrade"] == "websocket"
    assert headers["sec-websocket-version"] == "13"
    assert headers["sec-websocket-protocol"] == "x, y"


def test_accept_sends_the_subprotocol_and_headers_in_the_101(server: Server) -> None:
    with ws(server, "/echo", subprotocols=["x", "y"]) as client:
        assert client.subprotocol == "y"  # the application's choice
        response = client.response
        assert response is not None
        assert response.status_code == 101
        assert response.headers.get_all("sec-websocket-protocol") == ["y"]
        assert response.headers["x-accepted"] == "yes"
        assert response.headers["set-cookie"] == "a=b"


def test_accepting_with_a_subprotocol_the_client_did_not_offer_is_a_500(
    server: Server,
) -> None:
    # The client would fail a 101 naming it (RFC 6455 section 4.1): the
    # server refuses to send one and says why in its log.
    with pytest.raises(InvalidStatus) as caught:
        ws(server, "/pick?zzz", subprotocols=["x", "y"])
    assert caught.value.response.status_code == 500
    log = server.wait_for_log("'zzz' was not offered by the client")
    assert "subprotocol 'zzz' was not offered by the client (offered: x, y)" in log
    with ws(server, "/pick?y", subprotocols=["x", "y"]) as client:
        assert client.subprotocol == "y"
        assert client.recv(timeout=5) == "accepted"
    assert_still_serving(server)


# ---------------------------------------------------------------- messages


def test_text_and_binary_echo_both_ways(server: Server) -> None:
    messages: list[str | bytes] = [
        "héllo",
        b"\x00\xff",
        "",
        b"",
        "x" * 70_000,  # 64-bit length on the wire
        bytes(range(256)) * 500,
    ]
    with ws(server, "/echo") as client:
        for message in messages:
            client.send(message)
            echoed = client.recv(timeout=5)
            assert type(echoed) is type(message)
            assert echoed == message
        client.send(["frag", "ment", "ed"])
        assert client.recv(timeout=5) == "fragmented"


def test_frames_sent_with_the_handshake_reach_the_application(
    server: Server,
) -> None:
    request, _ = handshake_request("/echo")
    early = frames.encode(frames.TEXT, b"right away", mask=frames.new_mask())
    with server.connect() as sock:
        sock.sendall(request + early)
        assert read_head(sock).startswith(b"HTTP/1.1 101 ")
        assert read_frame(sock) == (0x81, b"right away")


# ------------------------------------------------------------------ closing


def test_application_close_code_and_reason_reach_the_client(server: Server) -> None:
    with ws(server, "/echo?t=app-close") as client:
        client.send("close please")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 4000
        assert client.close_reason == "bye now"
    # The client's echo of the close frame is what the application is told.
    mark = "MARK asgi-disconnect /echo?t=app-close 4000 'bye now'"
    assert mark in server.wait_for_log(mark)


def test_client_close_code_reaches_the_application(server: Server) -> None:
    with ws(server, "/echo?t=client-close") as client:
        client.send("hi")
        assert client.recv(timeout=5) == "hi"
        client.close(4001, "client bye")
    mark = "MARK asgi-disconnect /echo?t=client-close 4001 'client bye'"
    assert mark in server.wait_for_log(mark)


def test_a_dropped_connection_is_a_1006_disconnect(server: Server) -> None:
    request, _ = handshake_request("/echo?t=drop")
    with server.connect() as sock:
        sock.sendall(request)
        assert read_head(sock).startswith(b"HTTP/1.1 101 ")
    # Closed without a close frame: the application is still told.
    mark = "MARK asgi-disconnect /echo?t=drop 1006 ''"
    assert mark in server.wait_for_log(mark)


def test_send_after_the_disconnect_raises_an_oserror(server: Server) -> None:
    with ws(server, "/send-after-close") as client:
        client.close()
    # Not "send-after-close" alone: the app's first line names its path too.
    log = server.wait_for_log("MARK send-after-close ")
    assert "MARK send-after-close ClientDisconnected" in log


def test_returning_after_the_accept_closes_with_1000(server: Server) -> None:
    with ws(server, "/return") as client:
        assert client.recv(timeout=5) == "done"
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1000


# ------------------------------------------------- answers before the accept


def test_denial_response_carries_the_applications_status_and_body(
    server: Server,
) -> None:
    request, _ = handshake_request("/deny")
    with server.connect() as sock:
        sock.sendall(request)
        response = ResponseReader(sock).read()
        assert read_until_close(sock) == b""  # nothing follows it
    assert response.status == 401
    assert response.header("x-denied") == "1"
    assert response.header("content-type") == "text/plain"
    assert response.header("connection") == "close"
    assert response.header("upgrade") is None
    assert response.body == b"not allowed"


def test_close_before_the_accept_is_a_403(server: Server) -> None:
    assert refusal(server, "/refuse").response.status_code == 403
    assert_still_serving(server)


def test_an_exception_before_the_accept_is_a_500(server: Server) -> None:
    assert refusal(server, "/fail-before").response.status_code == 500
    assert "RuntimeError: boom before accept" in server.wait_for_log("boom before")
    assert_still_serving(server)


def test_an_exception_after_the_accept_closes_with_1011(server: Server) -> None:
    with ws(server, "/fail-after") as client:
        assert client.recv(timeout=5) == "accepted"
        client.send("fail now")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1011
    assert "RuntimeError: boom after accept" in server.wait_for_log("boom after")
    assert_still_serving(server)


# ------------------------------------------------- limits and bad handshakes


def test_a_message_over_max_message_closes_with_1009(
    servers: Callable[..., Server],
) -> None:
    server = servers(max_message=1024)
    with ws(server, "/echo?t=limit") as client:
        client.send("x" * 1024)
        assert client.recv(timeout=5) == "x" * 1024
        client.send(["x" * 600, "x" * 600])  # too big only as a whole
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1009
    # The application hears why, not a bare 1006.
    mark = "MARK asgi-disconnect /echo?t=limit 1009 ''"
    assert mark in server.wait_for_log(mark)
    with ws(server, "/echo") as client:
        client.send(b"y" * 1025)
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1009


@pytest.mark.parametrize(
    ("name", "change", "status"),
    [
        ("version", (b"version: 13", b"version: 8"), 426),
        ("key", (b"sec-websocket-key: ", b"sec-websocket-key: short"), 400),
        ("method", (b"GET ", b"POST "), 400),
    ],
)
def test_bad_handshakes_are_refused_without_running_the_application(
    server: Server, name: str, change: tuple[bytes, bytes], status: int
) -> None:
    request, _ = handshake_request(f"/never-called?{name}")
    request = request.replace(*change)
    response = server.exchange(request)
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    if status == 426:
        assert b"\r\nsec-websocket-version: 13\r\n" in response

    # A handshake after it, on a new connection, is served: once its mark is
    # in the log, a call for the refused one would be there too.
    with ws(server, f"/fence?{name}") as client:
        client.send("x")
        assert client.recv(timeout=5) == "x"
    log = server.wait_for_log(f"websocket-app /fence?{name}")
    assert f"websocket-app /fence?{name}" in log
    assert f"websocket-app /never-called?{name}" not in log


# ------------------------------------------------------------- frameworks


def test_starlette_websocket_route_works_unmodified(
    servers: Callable[..., Server],
) -> None:
    server = servers("starlette_app")
    with ws(server, "/ws", subprotocols=["chat"]) as client:
        assert client.subprotocol == "chat"
        client.send("hi")
        assert client.recv(timeout=5) == "starlette hi"
        client.send(b"\x01\x02")
        assert client.recv(timeout=5) == b"\x01\x02"
        client.close(4001)
    assert "MARK starlette-disconnect 4001" in server.wait_for_log("starlette-disc")

    # No route: Starlette closes before accepting, which is a 403.
    assert refusal(server, "/nowhere").response.status_code == 403
