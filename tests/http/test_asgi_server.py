"""ASGI over real sockets: the scope, bodies, streaming, keep-alive, pipelining."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import ResponseReader, Server

APP = "http_test_apps:echo"


@pytest.fixture(scope="module")
def server(servers: Callable[..., Server]) -> Server:
    return servers(APP)


def get(path: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: test\r\n{extra}\r\n".encode()


def test_hello_world_over_httpx(server: Server) -> None:
    response = httpx.get(server.url("/"))
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-length"] == "13"


def test_scope_carries_the_request(server: Server) -> None:
    response = httpx.get(server.url("/sc%C3%A9ne/../scope?a=1&b=%20"))
    # httpx normalises the dot segment away; the path below is what it sent.
    scope = json.loads(response.content)
    assert scope["method"] == "GET"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "http"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["spec_version"] == "2.4"
    assert "http.response.pathsend" in scope["extensions"]
    assert ["host", f"127.0.0.1:{server.port}"] in scope["headers"]


def test_path_is_percent_decoded_and_raw_path_kept(server: Server) -> None:
    raw = server.exchange(get("/caf%C3%A9/scope", extra="Connection: close\r\n"))
    scope = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert scope["path"] == "/café/scope"
    assert scope["raw_path"] == "/caf%C3%A9/scope"


def test_root_path_is_in_the_scope_and_prefixes_the_path(
    servers: Callable[..., Server],
) -> None:
    # Behind a proxy that strips the mount point. The ASGI spec has path
    # include root_path (Starlette and uvicorn follow it): frameworks strip
    # root_path off path to route, and build URLs from the full path.
    server = servers(APP, root_path="/api")
    raw = server.exchange(get("/caf%C3%A9/scope?q=1", extra="Connection: close\r\n"))
    assert raw.startswith(b"HTTP/1.1 200")
    scope = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/café/scope"
    assert scope["raw_path"] == "/api/caf%C3%A9/scope"
    assert scope["query_string"] == "q=1"


def test_request_body_streams_to_the_app(server: Server) -> None:
    def pieces() -> Iterator[bytes]:
        for index in range(50):
            yield b"%04d" % index

    response = httpx.post(server.url("/echo"), content=pieces())
    assert response.status_code == 200
    assert response.content == b"".join(b"%04d" % i for i in range(50))


def test_large_body_is_received_whole(server: Server) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB, more than the pause threshold
    response = httpx.post(server.url("/length"), content=body)
    assert response.text == str(len(body))


def test_streamed_response_uses_chunked_encoding(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(get("/stream"))
        response = ResponseReader(sock).read()
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.body == b"one,two,three"


def test_http10_streamed_response_is_close_delimited(server: Server) -> None:
    raw = server.exchange(get("/http10-stream", version="1.0"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"ab"


def test_keep_alive_is_the_http11_default(server: Server) -> None:
    with server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(get("/"))
            response = reader.read()
            assert response.body == b"Hello, world!"
            assert response.header("connection") is None


def test_http10_closes_unless_keep_alive_is_asked(server: Server) -> None:
    raw = server.exchange(get("/", version="1.0"))
    assert raw.count(b"HTTP/1.1 200") == 1
    assert b"connection: close" in raw.lower()
    with server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(get("/", version="1.0", extra="Connection: keep-alive\r\n"))
            response = reader.read()
            assert response.header("connection") == "keep-alive"


def test_connection_close_request_is_answered_then_closed(server: Server) -> None:
    raw = server.exchange(get("/", extra="Connection: close\r\n") + get("/n/never"))
    assert raw.count(b"HTTP/1.1 200") == 1
    assert b"never" not in raw


def test_app_content_length_is_sent_once(server: Server) -> None:
    # Two Content-Length lines, even equal ones, make strict clients (wrk,
    # proxies) drop the response.
    with server.connect() as sock:
        sock.sendall(get("/with-length"))
        response = ResponseReader(sock).read()
    lengths = [v for name, v in response.headers if name.lower() == "content-length"]
    assert lengths == ["5"]
    assert response.body == b"sized"


def test_pipelined_requests_answer_in_order(server: Server) -> None:
    paths = [f"/n/{index}" if index % 3 else "/sleep" for index in range(16)]
    with server.connect() as sock:
        sock.sendall(b"".join(get(path) for path in paths))
        reader = ResponseReader(sock)
        bodies = [reader.read().body for _ in paths]
    expected = [b"slept" if path == "/sleep" else path[3:].encode() for path in paths]
    assert bodies == expected


def test_pipelined_requests_with_bodies_answer_in_order(server: Server) -> None:
    request = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n%03d" % index
        for index in range(10)
    )
    with server.connect() as sock:
        sock.sendall(request)
        reader = ResponseReader(sock)
        bodies = [reader.read().body for _ in range(10)]
    assert bodies == [b"%03d" % index for index in range(10)]


def test_stale_send_cannot_write_into_next_pipelined_response(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(get("/keep-send") + get("/use-stale-send") + get("/"))
        reader = ResponseReader(sock)
        first, second, third = reader.read(), reader.read(), reader.read()
    assert first.body == b"kept"
    assert second.body == b"RuntimeError"
    assert third.body == b"Hello, world!"


def test_each_request_has_its_own_context(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(get("/context") * 3)
        reader = ResponseReader(sock)
        assert [reader.read().body for _ in range(3)] == [b"unset"] * 3


def test_expect_100_continue_is_answered_when_the_app_reads(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        interim = reader.read(head_only=True)
        assert interim.status == 100
        sock.sendall(b"hello")
        response = reader.read()
    assert response.status == 200
    assert response.body == b"hello"


def test_expect_100_continue_not_sent_when_app_ignores_body(server: Server) -> None:
    raw = server.exchange(
        b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert b"100 Continue" not in raw
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in raw.lower()


def test_head_never_sends_a_body(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/n/after"))
        reader = ResponseReader(sock)
        head = reader.read(head_only=True)
        after = reader.read()
    assert head.status == 200
    assert head.header("content-length") == "13"
    assert after.body == b"after"


def test_absolute_form_target_is_routed_by_its_path(server: Server) -> None:
    raw = server.exchange(
        b"GET http://example.com/n/absolute?x=1 HTTP/1.1\r\nHost: example.com\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200")
    assert raw.endswith(b"absolute")


def test_options_asterisk_reaches_the_app(server: Server) -> None:
    raw = server.exchange(b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    # The echo application has no route for "*": a 404 from it, not a 400.
    assert raw.startswith(b"HTTP/1.1 404")


def test_date_header_is_added(server: Server) -> None:
    response = httpx.get(server.url("/"))
    assert response.headers["date"].endswith(" GMT")


def test_no_server_header_by_default(server: Server) -> None:
    assert "server" not in httpx.get(server.url("/")).headers


def test_server_header_when_configured(servers: Callable[..., Server]) -> None:
    server = servers(APP, server_header="iodine")
    assert httpx.get(server.url("/")).headers["server"] == "iodine"


def test_no_caching_headers_are_invented(server: Server) -> None:
    headers = httpx.get(server.url("/headers-out")).headers
    for name in ("cache-control", "expires", "etag", "last-modified", "pragma"):
        assert name not in headers
    assert headers["x-custom"] == "1"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (299, b"HTTP/1.1 299 Success\r\n"),
        (599, b"HTTP/1.1 599 Server Error\r\n"),
        (451, b"HTTP/1.1 451 Unavailable For Legal Reasons\r\n"),
    ],
)
def test_status_lines_have_sensible_reasons(
    server: Server, status: int, line: bytes
) -> None:
    raw = server.exchange(get(f"/status/{status}", extra="Connection: close\r\n"))
    assert raw.startswith(line)


def test_204_and_304_have_no_body_or_length(server: Server) -> None:
    for status in (204, 304):
        with server.connect() as sock:
            sock.sendall(get(f"/status/{status}") + get("/n/next"))
            reader = ResponseReader(sock)
            response = reader.read()
            assert response.status == status
            assert response.header("content-length") is None
            assert response.header("transfer-encoding") is None
            assert reader.read().body == b"next"


def test_response_trailers_follow_the_chunked_body(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(get("/trailers", extra="TE: trailers\r\n"))
        response = ResponseReader(sock).read()
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"datamore"
    assert response.trailers == [("x-checksum", "abc")]


def test_pathsend_serves_the_file(server: Server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000  # more than one read piece
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    response = httpx.get(server.url("/pathsend"), params={"path": str(path)})
    assert response.status_code == 200
    assert response.content == data


def test_invalid_response_header_is_500_not_injected(server: Server) -> None:
    raw = server.exchange(get("/bad-header", extra="Connection: close\r\n"))
    assert raw.startswith(b"HTTP/1.1 500")
    assert b"Injected" not in raw


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_the_response(server: Server) -> None:
    result = subprocess.run(
        ["curl", "-s", "--max-time", "5", server.url("/")],
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == b"Hello, world!"


def test_large_streamed_response_arrives_whole(server: Server) -> None:
    with httpx.stream("GET", server.url("/big-stream")) as response:
        total = sum(len(chunk) for chunk in response.iter_bytes())
    assert total == 16 * 1024 * 1024
