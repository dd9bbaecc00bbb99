"""Limits, request-smuggling defences and application errors, over sockets.

Every malformed request must get a 4xx and a closed connection: never a 5xx,
never a hang (each read below is bounded, so a hang fails the test).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.http.conftest import ResponseReader, Server, read_until_close

APP = "http_test_apps:echo"

# Small limits keep the requests small; the defaults are checked in
# test_config.py.
LIMITS = {
    "max_body": 1000,
    "max_header_line": 200,
    "max_headers": 10,
    "max_header_bytes": 1000,
}


@pytest.fixture(scope="module")
def server(servers: Callable[..., Server]) -> Server:
    return servers(APP, **LIMITS)


def assert_rejected(server: Server, request: bytes, status: int = 400) -> None:
    """``request`` gets ``status``, the connection closes, the server lives."""
    raw = server.exchange(request)
    assert raw.startswith(f"HTTP/1.1 {status} ".encode()), raw[:200]
    assert b"connection: close" in raw.lower()
    assert raw.count(b"HTTP/1.1") == 1
    assert httpx.get(server.url("/")).status_code == 200


# ------------------------------------------------------------ smuggling


def test_content_length_with_transfer_encoding_is_400(server: Server) -> None:
    assert_rejected(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /n/smuggled HTTP/1.1\r\n"
        b"Host: t\r\n\r\n",
    )


def test_duplicate_differing_content_length_is_400(server: Server) -> None:
    assert_rejected(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Content-Length: 5\r\n\r\nhello",
    )


def test_content_length_list_is_400(server: Server) -> None:
    assert_rejected(
        server, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc"
    )


def test_invalid_chunk_size_is_400(server: Server) -> None:
    assert_rejected(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
    )


def test_overflowing_chunk_size_is_400(server: Server) -> None:
    assert_rejected(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    )


def test_transfer_encoding_not_ending_in_chunked_is_400(server: Server) -> None:
    assert_rejected(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    )


def test_bare_cr_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n")


def test_bare_lf_line_ending_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\nHost: t\n\n")


def test_whitespace_before_colon_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n")


def test_obs_fold_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n")


def test_invalid_header_token_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\nX(A): b\r\n\r\n")


def test_invalid_method_token_is_400(server: Server) -> None:
    assert_rejected(server, b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n")


def test_control_character_in_header_value_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n")


def test_missing_host_on_http11_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n")


def test_duplicate_host_is_400(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")


def test_http2_request_line_is_505(server: Server) -> None:
    assert_rejected(server, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", status=505)


def test_requests_before_a_bad_one_are_still_answered(server: Server) -> None:
    raw = server.exchange(
        b"GET /n/first HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n"
        b"X A: b\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"first" in raw
    assert raw.count(b"HTTP/1.1 400") == 1


# --------------------------------------------------------------- limits


def test_request_line_over_the_limit_is_414(server: Server) -> None:
    assert_rejected(
        server, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n", status=414
    )


def test_header_line_over_the_limit_is_431(server: Server) -> None:
    assert_rejected(
        server, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n", 431
    )


def test_too_many_headers_is_431(server: Server) -> None:
    headers = b"".join(b"X-%d: v\r\n" % index for index in range(12))
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n", 431)


def test_header_block_over_the_limit_is_431(server: Server) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (index, b"v" * 150) for index in range(9))
    assert_rejected(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n", 431)


def test_unfinished_header_line_over_the_limit_is_431(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        raw = b""
        for _ in range(20):
            try:
                sock.sendall(b"v" * 150)
            except OSError:
                break
            time.sleep(0.01)
        raw = read_until_close(sock)
    assert raw.startswith(b"HTTP/1.1 431")


def test_content_length_over_max_body_is_413(server: Server) -> None:
    assert_rejected(
        server, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413
    )


def test_chunked_body_over_max_body_is_413(server: Server) -> None:
    chunk = b"%x\r\n%s\r\n" % (600, b"x" * 600)
    assert_rejected(
        server,
        b"POST /length HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 2
        + b"0\r\n\r\n",
        413,
    )


def test_body_at_max_body_is_accepted(server: Server) -> None:
    response = httpx.post(server.url("/length"), content=b"x" * 1000)
    assert response.text == "1000"


def test_incomplete_head_times_out_with_408(
    servers: Callable[..., Server],
) -> None:
    server = servers(APP, header_timeout=1)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        raw = read_until_close(sock, timeout=10)
    assert raw.startswith(b"HTTP/1.1 408")


def test_silent_connection_times_out(servers: Callable[..., Server]) -> None:
    server = servers(APP, header_timeout=1)
    with server.connect() as sock:
        raw = read_until_close(sock, timeout=10)
    assert raw.startswith(b"HTTP/1.1 408")


def test_idle_keep_alive_connection_is_closed(servers: Callable[..., Server]) -> None:
    server = servers(APP, keep_alive=1)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        reader = ResponseReader(sock, timeout=10)
        assert reader.read().status == 200
        # Nothing more arrives, and the server closes: recv returns b"".
        assert read_until_close(sock, timeout=10) == b""


def test_connections_over_the_cap_get_503(servers: Callable[..., Server]) -> None:
    server = servers(APP, max_connections=2)
    held = [server.connect() for _ in range(2)]
    try:
        for sock in held:  # both are being served
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert ResponseReader(sock).read().status == 200
        raw = server.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, new connections are served again (bounded retry:
    # the server sees the closes a moment later).
    for _ in range(100):
        if httpx.get(server.url("/")).status_code == 200:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the server never admitted connections again")


def test_file_descriptor_reserve_answers_503(servers: Callable[..., Server]) -> None:
    server = servers(APP, fd_reserve=10**9)
    raw = server.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 503")


# --------------------------------------------------------------- errors


def test_app_exception_is_500_and_the_server_lives_on(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET /error HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        reader = ResponseReader(sock)
        assert reader.read().status == 500
        # The same connection carries on.
        assert reader.read().body == b"Hello, world!"
    log = server.wait_for_log("boom before the response")
    assert "Traceback" in log
    assert "RuntimeError: boom before the response" in log


def test_app_returning_without_a_response_is_500(server: Server) -> None:
    response = httpx.get(server.url("/no-response"))
    assert response.status_code == 500
    assert "without completing" in server.wait_for_log("without completing")


def test_exception_after_the_head_closes_the_connection(server: Server) -> None:
    raw = server.exchange(b"GET /error-after-start HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    # The chunked body never gets its last chunk: the client sees the break.
    assert not raw.endswith(b"0\r\n\r\n")
    assert httpx.get(server.url("/")).status_code == 200


def test_disconnect_reaches_the_waiting_app(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        time.sleep(0.1)
    log = server.wait_for_log("disconnect-seen")
    assert "MARK disconnect-seen http.disconnect" in log


def test_send_after_client_reset_raises_oserror(server: Server) -> None:
    sock = server.connect()
    sock.sendall(b"GET /stream-until-gone HTTP/1.1\r\nHost: t\r\n\r\n")
    sock.recv(4096)
    # Reset (not just close) the connection: SO_LINGER 0.
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    sock.close()
    log = server.wait_for_log("send-raised")
    assert "MARK send-raised ClientDisconnected" in log
    assert httpx.get(server.url("/")).status_code == 200
