"""ASGI lifespan, proxy headers and the access log, over real sockets."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Server, read_until_close

ECHO = "http_test_apps:echo"


def scope_of(server: Server, headers: dict[str, str]) -> dict[str, object]:
    response = httpx.get(server.url("/scope"), headers=headers)
    return json.loads(response.content)  # type: ignore[no-any-return]


# ------------------------------------------------------------- lifespan


def test_lifespan_startup_state_reaches_requests(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server("http_test_apps:lifespan_app")
    assert httpx.get(server.url("/")).text == "yes"


def test_lifespan_shutdown_runs_when_the_server_stops(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server("http_test_apps:lifespan_app")
    assert httpx.get(server.url("/")).status_code == 200
    assert server.stop() == 0
    assert "MARK lifespan-shutdown" in server.log()


def test_lifespan_startup_failure_stops_the_server(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server("http_test_apps:lifespan_fails")
    server.proc.wait(timeout=20)
    assert "Application start-up failed: no database" in server.log()


def test_app_without_lifespan_is_served_in_auto_mode(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server("http_test_apps:no_lifespan")
    assert httpx.get(server.url("/")).text == "served"
    assert "does not support ASGI lifespan" in server.log()


def test_lifespan_off_sends_no_lifespan_events(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server("http_test_apps:no_lifespan", lifespan="off")
    assert httpx.get(server.url("/")).text == "served"
    assert "lifespan" not in server.log()


# --------------------------------------------------------- proxy headers


def test_forwarded_for_from_a_trusted_peer_sets_client_and_scheme(
    servers: Callable[..., Server],
) -> None:
    server = servers(ECHO)  # trusts 127.0.0.1 by default
    scope = scope_of(
        server,
        {"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"},
    )
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"


def test_rfc7239_forwarded_header_is_honoured(servers: Callable[..., Server]) -> None:
    server = servers(ECHO)
    scope = scope_of(
        server, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https, for=127.0.0.1'}
    )
    assert scope["client"] == ["2001:db8::1", 0]
    assert scope["scheme"] == "https"


def test_forwarded_headers_are_ignored_from_untrusted_peers(
    servers: Callable[..., Server],
) -> None:
    server = servers(ECHO, forwarded_allow_ips="10.1.2.3")
    scope = scope_of(
        server, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    )
    assert scope["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert scope["scheme"] == "http"


def test_forwarded_allow_ips_star_trusts_everyone(
    servers: Callable[..., Server],
) -> None:
    server = servers(ECHO, forwarded_allow_ips="*")
    scope = scope_of(server, {"X-Forwarded-For": "198.51.100.1"})
    assert scope["client"] == ["198.51.100.1", 0]


# ------------------------------------------------------------ access log


def test_access_log_writes_one_line_per_request(
    servers: Callable[..., Server],
) -> None:
    server = servers(ECHO, access_log=True)
    httpx.get(server.url("/n/logged?x=1"))
    log = server.wait_for_log("/n/logged")
    pattern = (
        r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
        r'"GET /n/logged\?x=1 HTTP/1\.1" 200 6 \d+\.\d{6}'
    )
    assert re.search(pattern, log), log


def test_access_log_is_off_by_default(servers: Callable[..., Server]) -> None:
    server = servers(ECHO)
    httpx.get(server.url("/n/not-logged"))
    httpx.get(server.url("/error"))  # something that does log, as a fence
    log = server.wait_for_log("boom before the response")
    assert "/n/not-logged" not in log


# ------------------------------------------------------ graceful shutdown


def test_stop_lets_the_response_under_way_finish(
    fresh_server: Callable[..., Server],
) -> None:
    server = fresh_server(ECHO)
    with server.connect() as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        server.wait_for_log("slow-started")
        server.proc.send_signal(signal.SIGTERM)
        raw = read_until_close(sock, timeout=10)
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in raw.lower()
    assert raw.endswith(b"finished")
    assert server.proc.wait(timeout=10) == 0


# -------------------------------------------------------- open-files limit


def test_open_files_limit_is_raised_and_capacity_logged(
    fresh_server: Callable[..., Server],
) -> None:
    resource = pytest.importorskip("resource")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard open-files limit is too low to see a raise")

    def lower_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    server = fresh_server(ECHO, preexec=lower_soft_limit)
    limits = Path(f"/proc/{server.proc.pid}/limits")
    if not limits.exists():
        pytest.skip("no /proc on this system")
    line = next(
        row for row in limits.read_text().splitlines() if "Max open files" in row
    )
    soft = line.split()[3]
    assert int(soft) > 256
    assert "room for about" in server.wait_for_log("room for about")
