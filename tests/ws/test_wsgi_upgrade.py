"""WSGI native upgrades (``environ["iodine.upgrade"]``) over real sockets.

The server is a real iodine HTTP server in a subprocess, running
``wsgi_upgrade_apps.app`` on the thread pool; the clients are the
``websockets`` library, httpx and raw sockets.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.http.conftest import ResponseReader, Server
from tests.ws.conftest import handshake_request, read_head

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.ws.wsgi_upgrade_apps:app"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("wsgi-upgrade") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        # The server process imports the application as tests.ws.<module>.
        path = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
        server = Server(APP, {"interface": "wsgi"}, log)
    yield server
    server.stop()


def ws_url(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"closed after {data!r}")
        data += chunk
    return data


def assert_still_serving(server: Server) -> None:
    response = httpx.get(server.url("/after"), timeout=5)
    assert response.text == "plain /after None"


# --------------------------------------------------------------- WebSocket


def test_wsgi_app_upgrades_to_a_websocket_echo(server: Server) -> None:
    with connect(
        ws_url(server, "/ws?room=1"),
        subprotocols=["chat", "chat.v2"],  # type: ignore[list-item]  # plain str
        open_timeout=5,
    ) as ws:
        # The headers the application gave start_response are in the 101.
        response = ws.response
        assert response is not None
        assert response.status_code == 101
        assert response.headers["Set-Cookie"] == "session=abc; Path=/"
        assert response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
        assert "Content-Length" not in response.headers
        assert ws.subprotocol == "chat.v2"

        # conn.env is the environ itself, the kind is visible in it.
        assert ws.recv(timeout=5) == (
            "open websocket /ws?room=1 websocket env-is-scope=True subprotocol=chat.v2"
        )

        # Text frames arrive as str, binary ones as bytes.
        ws.send("hello")
        assert ws.recv(timeout=5) == "str hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"bytes \x00\x01\xff"

    # The body the application returned was closed, not sent.
    assert "MARK closed /ws" in server.wait_for_log("closed /ws")


def test_bad_websocket_version_gets_426_without_running_the_app(
    server: Server,
) -> None:
    request, _ = handshake_request("/ws-bad-version")
    request = request.replace(b"sec-websocket-version: 13", b"sec-websocket-version: 8")
    raw = server.exchange(request)
    assert raw.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13\r\n" in raw.lower()

    # A request after it marks the log, so the app had its chance to run.
    assert_still_serving(server)
    log = server.wait_for_log("MARK app /after")
    assert "MARK app /after" in log
    assert "/ws-bad-version" not in log


def test_bad_websocket_handshake_gets_400_without_running_the_app(
    server: Server,
) -> None:
    request, _ = handshake_request("/ws-bad-key")
    request = request.replace(b"sec-websocket-key: ", b"sec-websocket-key: x")
    raw = server.exchange(request)
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert_still_serving(server)
    assert "/ws-bad-key" not in server.wait_for_log("MARK app /after")


def test_app_that_ignores_the_upgrade_answers_plain_http(server: Server) -> None:
    # A valid handshake to a path that does not take it: the application
    # sees the offer and answers as usual; the connection closes after it.
    request, _ = handshake_request("/plain")
    with server.connect() as sock:
        sock.sendall(request)
        response = ResponseReader(sock).read()
        assert sock.recv(1) == b""
    assert response.status == 200
    assert response.body == b"plain /plain websocket"
    assert response.header("content-length") == str(len(response.body))

    # Without an upgrade in the request there is no offer in the environ.
    assert httpx.get(server.url("/plain"), timeout=5).text == "plain /plain None"


def test_wrong_upgrade_key_for_the_request_kind_is_a_500(server: Server) -> None:
    request, _ = handshake_request("/wrong-kind")
    raw = server.exchange(request)
    assert raw.startswith(b"HTTP/1.1 500 ")
    log = server.wait_for_log("set iodine.upgrade.tcp for GET /wrong-kind")
    assert "a websocket request, which takes iodine.upgrade" in log
    assert "MARK closed /wrong-kind" in server.wait_for_log("closed /wrong-kind")
    assert_still_serving(server)


def test_a_value_that_is_not_a_handler_is_a_500(server: Server) -> None:
    request, _ = handshake_request("/not-a-handler")
    raw = server.exchange(request)
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"101" not in raw
    assert "invalid iodine.upgrade" in server.wait_for_log("invalid iodine.upgrade")


@pytest.mark.parametrize("path", ["/late-write", "/late-yield"])
def test_upgrade_after_body_bytes_is_an_error_and_closes(
    server: Server, path: str
) -> None:
    request, _ = handshake_request(path)
    started = time.monotonic()
    raw = server.exchange(request)
    assert time.monotonic() - started < 4, "the connection was not closed"

    # The part already sent stays sent; the response is cut off, not ended,
    # and no switch was made.
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n")
    assert b"101" not in raw.split(b"\r\n", 1)[0]
    log = server.wait_for_log(f"iodine.upgrade for GET {path} after it sent")
    assert f"for GET {path} after it sent part of its response" in log
    assert_still_serving(server)


# --------------------------------------------------------------------- SSE


def test_wsgi_app_upgrades_to_an_event_stream(server: Server) -> None:
    headers = {"accept": "text/event-stream", "last-event-id": "6"}
    with httpx.stream(
        "GET", server.url("/sse"), headers=headers, timeout=5
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["set-cookie"] == "stream=1"
        lines = list(response.iter_lines())
    assert lines == [
        "data: hello sse /sse",
        "",
        "id: 7",
        "event: tick",
        "data: last=6",
        "",
    ]
    assert "never sent" not in "".join(lines)


def test_event_stream_request_the_app_ignores_is_plain_http(server: Server) -> None:
    response = httpx.get(
        server.url("/plain"), headers={"accept": "text/event-stream"}, timeout=5
    )
    assert response.text == "plain /plain sse"


# --------------------------------------------------------------------- raw


def test_other_upgrade_switches_to_a_raw_connection(server: Server) -> None:
    with server.connect() as sock:
        # Bytes of the new protocol right behind the head, in the same write.
        sock.sendall(
            b"GET /raw HTTP/1.1\r\nHost: t\r\nUpgrade: foo\r\n"
            b"Connection: upgrade\r\n\r\nearly bytes;"
        )
        head = read_head(sock).lower()
        assert head.startswith(b"http/1.1 101 ")
        assert b"upgrade: foo\r\n" in head
        assert b"x-raw: yes\r\n" in head

        # The kind is not offered for other protocols, but the key is honoured.
        greeting = b"raw raw foo\n"
        assert read_exactly(sock, len(greeting)) == greeting
        assert read_exactly(sock, 12) == b"EARLY BYTES;"
        sock.sendall(b"later")
        assert read_exactly(sock, 5) == b"LATER"
    assert "MARK app /raw None" in server.wait_for_log("app /raw")
    assert "MARK closed /raw" in server.wait_for_log("closed /raw")


def test_upgrade_key_on_a_request_that_cannot_upgrade_is_ignored(
    server: Server,
) -> None:
    # "Upgrade: foo" not named in Connection is no upgrade (RFC 9110 section
    # 7.8): the application's iodine.upgrade.tcp is ignored, its answer sent.
    raw = server.exchange(
        b"GET /raw HTTP/1.1\r\nHost: t\r\nUpgrade: foo\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"x-raw: yes\r\n" in raw.lower()
    assert raw.endswith(b"\r\n\r\n")


def test_wsgi_app_naming_a_subprotocol_the_client_did_not_offer_gets_500(
    server: Server,
) -> None:
    # /ws always answers "chat.v2"; this client offers only "chat".
    with pytest.raises(InvalidStatus) as caught:
        connect(
            ws_url(server, "/ws?room=2"),
            subprotocols=["chat"],  # type: ignore[list-item]  # plain str
            open_timeout=5,
        )
    assert caught.value.response.status_code == 500
    log = server.wait_for_log("'chat.v2' was not offered by the client")
    assert "subprotocol 'chat.v2' was not offered by the client (offered: chat)" in log
