"""The ws:// client against the real HTTP server (``service="http"``), both
behind an ASGI application and behind a native handler.

``test_client.py`` talks to the test-only ``ws-test`` service; here the
server is ``asgi_ws_apps:app`` in its own process (``/echo`` is ASGI,
``/native`` hands the connection to ``NativeEcho``), and the client runs on a
private reactor in this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iodine import CloseReason, Reactor
from tests.http.conftest import Server
from tests.ws.conftest import Recorder, Runner, wait_for

ROOT = Path(__file__).resolve().parents[2]

# What NativeEcho writes in on_open, before any echo.
NATIVE_GREETING = ["open websocket websocket /native", "subprotocol None"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server of ``asgi_ws_apps:app`` for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(ROOT))
        server = Server(
            "tests.ws.asgi_ws_apps:app",
            {"address": "127.0.0.1"},
            tmp_path_factory.mktemp("servers") / "server.log",
        )
    yield server
    server.stop()


@pytest.fixture
def client_reactor(reactor: Reactor, runner: Runner) -> Reactor:
    """The test's own reactor, running (the clients live on it)."""
    runner.start()
    return reactor


def greeting_of(path: str) -> list[str]:
    return NATIVE_GREETING if path.startswith("/native") else []


def open_client(
    reactor: Reactor, server: Server, path: str, recorder: Recorder, **options: Any
) -> Any:
    """A client connection to ``path``, open (its on_open has run)."""
    conn = reactor.connect(
        f"ws://127.0.0.1:{server.port}{path}", handler=recorder, **options
    )
    assert recorder.opened.wait(5), f"not open: {conn.error!r}"
    return conn


def received(recorder: Recorder, count: int) -> list[Any]:
    """The first ``count`` messages, once that many have arrived."""
    wait_for(lambda: len(recorder.messages()) >= count)
    return recorder.messages()[:count]


@pytest.mark.parametrize(
    ("path", "mark"),
    [
        ("/echo?t=client", "MARK asgi-disconnect /echo?t=client 4001 'bye'"),
        ("/native?t=client", "MARK native-close /native?t=client PEER 4001"),
    ],
)
def test_text_and_bytes_echo_and_the_client_close_code_arrives(
    client_reactor: Reactor, server: Server, path: str, mark: str
) -> None:
    recorder = Recorder(echo=False)
    conn = open_client(client_reactor, server, path, recorder)
    greeting = greeting_of(path)
    messages: list[str | bytes] = ["héllo", b"\x00\xff", "", "y" * 70_000]
    for message in messages:
        conn.write(message)

    # Text comes back as str and binary as bytes, in order, 64-bit lengths too.
    echoed = received(recorder, len(greeting) + len(messages))
    assert echoed == [*greeting, *messages]

    conn.close(4001, "bye")
    assert recorder.close_reason() is CloseReason.LOCAL
    assert conn.close_code == 4001  # the server's echo of our close frame
    assert mark in server.wait_for_log(mark)


@pytest.mark.parametrize(
    ("path", "chosen"),
    [
        ("/echo", "chat.v2"),  # the ASGI app accepts the last one offered
        ("/native", "chat.v1"),  # the native route takes the first
    ],
)
def test_the_application_picks_among_the_offered_subprotocols(
    client_reactor: Reactor, server: Server, path: str, chosen: str
) -> None:
    recorder = Recorder(echo=False)
    conn = open_client(
        client_reactor, server, path, recorder, subprotocols=["chat.v1", "chat.v2"]
    )
    assert conn.subprotocol == chosen
    headers = dict(conn.response_headers)
    assert headers[b"sec-websocket-protocol"] == chosen.encode()
    # The application's extra headers come with the 101.
    extra = (b"x-accepted", b"yes") if path == "/echo" else (b"x-native", b"yes")
    assert extra in conn.response_headers
    if path == "/native":
        # The handler sees the same choice as the client.
        assert received(recorder, 2)[1] == f"subprotocol {chosen}"


def test_headers_the_client_sends_reach_the_application(
    client_reactor: Reactor, server: Server
) -> None:
    recorder = Recorder(echo=False)
    open_client(
        client_reactor,
        server,
        "/scope?x=1",
        recorder,
        headers={"X-Token": "secret", "Cookie": "session=abc"},
        subprotocols=["chat"],
    )
    scope = json.loads(received(recorder, 1)[0])
    assert scope["type"] == "websocket"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "x=1"
    assert scope["subprotocols"] == ["chat"]
    headers = dict(scope["headers"])
    assert headers["x-token"] == "secret"
    assert headers["cookie"] == "session=abc"
    assert headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/echo?t=server-close", 4000, "bye now"),
        ("/native?t=server-close", 4002, "native bye"),
    ],
)
def test_on_close_gets_the_code_the_server_closes_with(
    client_reactor: Reactor, server: Server, path: str, code: int, reason: str
) -> None:
    recorder = Recorder(echo=False)
    conn = open_client(client_reactor, server, path, recorder)
    greeting = greeting_of(path)
    received(recorder, len(greeting))
    conn.write("close please")
    assert recorder.close_reason() is CloseReason.PEER
    assert (conn.close_code, conn.close_reason) == (code, reason)
    assert recorder.messages() == greeting  # nothing after the close frame
