"""WSGI (PEP 3333) over real sockets, on the thread pool."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.http.conftest import ResponseReader, Server, read_until

APP = "http_test_apps:wsgi_app"


@pytest.fixture(scope="module")
def server(servers: Callable[..., Server]) -> Server:
    return servers(APP, root_path="/mount")


def test_wsgi_hello_world_gets_a_content_length(server: Server) -> None:
    response = httpx.get(server.url("/"))
    assert response.text == "Hello, WSGI!"
    assert response.headers["content-length"] == "12"
    assert response.headers["date"].endswith(" GMT")


def test_wsgi_input_streams_a_chunked_body(server: Server) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB, beyond the 64 KiB pause mark

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    response = httpx.post(server.url("/echo"), content=pieces())
    assert response.content == body


def test_wsgi_input_readlines(server: Server) -> None:
    response = httpx.post(server.url("/lines"), content=b"a\nb\nc")
    assert response.text == "3"


def test_wsgi_iterable_is_sent_as_produced_with_chunks(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        response = ResponseReader(sock).read()
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"one,two,three"


def test_wsgi_piece_goes_out_before_the_next_is_produced(server: Server) -> None:
    # The application yields "first," and then waits for a gate that only
    # this test opens, after it has received "first,": a server that
    # collected the iterable before writing would send nothing until the
    # application gave up waiting, long after read_until has.
    gate = uuid.uuid4().hex
    with server.connect() as sock:
        sock.sendall(b"GET /gated?%s HTTP/1.1\r\nHost: t\r\n\r\n" % gate.encode())
        before = read_until(sock, b"first,\r\n", timeout=2.0)
        assert before.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in before.lower()
        assert before.endswith(b"\r\n6\r\nfirst,\r\n")

        assert httpx.get(server.url(f"/gate/open?{gate}")).text == "opened"
        after = read_until(sock, b"0\r\n\r\n", timeout=2.0)
    assert after == b"6\r\nsecond\r\n0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_wsgi_input_gives_the_app_the_body_before_it_is_complete(
    server: Server, framing: str
) -> None:
    # The client sends a first part, then waits until the application has
    # read it (the server logs it) before sending the rest: a server that
    # gathered the whole body before calling the application, or whose
    # read(n) waited for the end of the body, never logs it.
    first = uuid.uuid4().hex.encode()
    rest = b"r" * 100_000
    head = b"POST /read-first HTTP/1.1\r\nHost: t\r\n"
    head += b"X-Read-First: %d\r\n" % len(first)
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        first_part = b"%x\r\n%s\r\n" % (len(first), first)
        rest_part = b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest)
    else:
        head += b"Content-Length: %d\r\n\r\n" % (len(first) + len(rest))
        first_part, rest_part = first, rest

    with server.connect() as sock:
        sock.sendall(head + first_part)
        marker = f"MARK input-read {first.decode()}"
        assert marker in server.wait_for_log(marker, timeout=2.0)

        sock.sendall(rest_part)
        response = ResponseReader(sock).read()
    assert response.status == 200
    assert response.body == b"%d,%d" % (len(first), len(rest))


def test_wsgi_close_is_called(server: Server) -> None:
    assert httpx.get(server.url("/close")).content == b"first,second"
    assert "MARK closed fail=False" in server.wait_for_log("closed fail=False")


def test_wsgi_close_is_called_when_iteration_fails(server: Server) -> None:
    raw = server.exchange(b"GET /close-error HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert not raw.endswith(b"0\r\n\r\n")
    log = server.wait_for_log("closed fail=True")
    assert "MARK closed fail=True" in log
    assert "boom while iterating" in log


def test_wsgi_file_wrapper_sends_the_file(server: Server) -> None:
    assert httpx.get(server.url("/file")).content == b"f" * 200_000


def test_wsgi_write_callable(server: Server) -> None:
    response = httpx.get(server.url("/write"))
    assert response.content == b"helloworld"
    assert response.headers["content-length"] == "10"


def test_wsgi_exception_is_500_and_the_server_lives_on(server: Server) -> None:
    assert httpx.get(server.url("/error")).status_code == 500
    assert "RuntimeError: boom in WSGI" in server.wait_for_log("boom in WSGI")
    assert httpx.get(server.url("/")).status_code == 200


def test_wsgi_environ(server: Server) -> None:
    raw = server.exchange(
        b"POST /mount/environ?q=%20x HTTP/1.1\r\nHost: t\r\nContent-Type: text/x\r\n"
        b"Content-Length: 0\r\nX-Twice: a\r\nX-Twice: b\r\nX_Under: sneaky\r\n"
        b"Connection: close\r\n\r\n"
    )
    environ = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert environ == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/mount",
        "PATH_INFO": "/environ",
        "QUERY_STRING": "q=%20x",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/x",
        "CONTENT_LENGTH": "0",
        "HTTP_X_TWICE": "a,b",
        "HTTP_X_UNDER": None,
        "wsgi.url_scheme": "http",
    }


def test_wsgi_pipelined_requests_answer_in_order(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /write HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        reader = ResponseReader(sock)
        bodies = [reader.read().body for _ in range(3)]
    assert bodies == [b"Hello, WSGI!", b"one,two,three", b"helloworld"]


def test_interface_option_forces_wsgi(servers: Callable[..., Server]) -> None:
    server = servers(APP, interface="wsgi")
    assert httpx.get(server.url("/")).text == "Hello, WSGI!"


def test_wsgi_expect_100_continue_is_answered_when_input_is_read(
    server: Server,
) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        assert reader.read(head_only=True).status == 100
        sock.sendall(b"hello")
        response = reader.read()
    assert response.body == b"hello"


def test_wsgi_large_generator_response_arrives_whole(server: Server) -> None:
    with httpx.stream("GET", server.url("/big-stream")) as response:
        total = sum(len(chunk) for chunk in response.iter_bytes())
    assert total == 16 * 1024 * 1024


def test_wsgi_requests_that_block_each_get_a_pool_thread(server: Server) -> None:
    # Eight requests that each wait for all eight to be running, against
    # the default eight threads: a pool that left requests queued behind a
    # blocked thread (waking fewer threads than it has work for) answers
    # "alone" after the applications give up waiting.
    name = uuid.uuid4().hex
    with ThreadPoolExecutor(8) as clients:
        answers = list(
            clients.map(
                lambda _: httpx.get(server.url(f"/together?{name}-8"), timeout=10).text,
                range(8),
            )
        )
    assert answers == ["met"] * 8


def test_wsgi_input_of_a_request_without_a_body_reads_empty(server: Server) -> None:
    # GET and an empty POST share one stateless wsgi.input; every way of
    # reading it ends at once.
    assert httpx.get(server.url("/echo")).content == b""
    assert httpx.post(server.url("/echo"), content=b"").content == b""
    assert httpx.post(server.url("/lines"), content=b"").text == "0"
