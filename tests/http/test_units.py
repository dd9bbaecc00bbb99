"""Options, interface detection, proxy parsing and header encoding, in process."""

from __future__ import annotations

import calendar
import re
from types import SimpleNamespace
from typing import Any

import pytest

from iodine.core.reactor import Reactor
from iodine.http import headers, sse
from iodine.http.config import KIB, MIB, HttpConfig, from_options
from iodine.http.headers import (
    ResponseError,
    date_line,
    encode_head,
    reason_phrase,
    status_line,
)
from iodine.http.proxy import TrustedProxies, forwarded_client
from iodine.http.service import detect_interface, http_service
from iodine.http.websocket import connection as ws_connection


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    return []


class AsgiClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


def test_defaults_match_the_documented_limits() -> None:
    config = HttpConfig()
    assert config.max_body == 50 * MIB
    assert config.max_header_line == 8 * KIB
    assert config.max_headers == 128
    assert config.max_header_bytes == 32 * KIB
    assert config.keep_alive == 40
    assert config.fd_reserve == 64
    assert config.server_header is None
    assert config.access_log is False
    assert "127.0.0.1" in config.forwarded_allow_ips
    assert "10.0.0.1" not in config.forwarded_allow_ips


def test_websocket_and_sse_limits_default_to_256_kib_and_40_s_pings() -> None:
    config = HttpConfig()
    assert config.max_message == 256 * KIB
    assert config.ping == 40
    # The native connections and the ws:// client use the same values.
    assert ws_connection.DEFAULT_MAX_MESSAGE == 256 * KIB
    assert ws_connection.DEFAULT_PING == 40
    assert sse.DEFAULT_PING == 40


def test_listen_options_are_popped_and_unknown_ones_rejected() -> None:
    options: dict[str, Any] = {"max_body": 10, "keep_alive": 5}
    config = from_options(options)
    assert options == {}
    assert (config.max_body, config.keep_alive) == (10, 5)
    with pytest.raises(TypeError, match="max_bodyy"):
        from_options({"max_bodyy": 10})


@pytest.mark.parametrize(
    "options",
    [
        {"interface": "cgi"},
        {"lifespan": "maybe"},
        {"max_body": 0},
        {"max_headers": -1},
        {"keep_alive": 0},
        {"header_timeout": "soon"},
        {"max_header_bytes": 10, "max_header_line": 100},
        {"server_header": "a\r\nb"},
        {"root_path": "/trailing/"},
        {"forwarded_allow_ips": "10.0.0.0/33"},
    ],
)
def test_bad_option_values_raise_value_error(options: dict[str, Any]) -> None:
    name = next(iter(options))
    with pytest.raises(ValueError, match=name.split("_")[-1]):
        from_options(dict(options))


def test_http_service_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="colour"):
        http_service(Reactor(), asgi_app, {"colour": "blue"})


def test_http_service_needs_an_application() -> None:
    with pytest.raises(TypeError):
        http_service(Reactor(), None, {})


def test_interface_is_detected_with_an_override() -> None:
    assert detect_interface(asgi_app, "auto") == "asgi"
    assert detect_interface(AsgiClass(), "auto") == "asgi"
    assert detect_interface(wsgi_app, "auto") == "wsgi"
    assert detect_interface(wsgi_app, "asgi") == "asgi"


def test_trusted_proxies_accept_addresses_and_networks() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8,::1")
    assert "10.20.30.40" in trusted
    assert "::1" in trusted
    assert "11.0.0.1" not in trusted
    assert "not an address" not in trusted
    assert "1.2.3.4" in TrustedProxies(["*"])


def test_forwarded_for_takes_the_first_untrusted_hop_from_the_right() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8")
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9, 10.0.0.5")]
    client, scheme = forwarded_client(headers, trusted, ("127.0.0.1", 1), "http")
    # 6.6.6.6 could be made up by the client; 203.0.113.9 is what our
    # trusted proxy saw.
    assert client == ("203.0.113.9", 0)
    assert scheme == "http"


def test_reason_phrases_cover_registered_and_unknown_codes() -> None:
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(299) == "Success"
    assert status_line(521) == b"HTTP/1.1 521 Server Error\r\n"
    with pytest.raises(ResponseError):
        status_line(1000)


def test_response_headers_are_validated_and_framing_is_ours() -> None:
    head = encode_head(
        200,
        [
            (b"content-type", b"text/plain"),
            (b"Content-Length", b"5"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
        ],
    )
    assert head.length == 5
    assert head.close is True
    assert b"transfer-encoding" not in head.block
    assert b"connection" not in head.block
    for bad in ([(b"x-a", b"1\r\nx-b: 2")], [(b"bad name", b"1")], [(b"x", 1)]):
        with pytest.raises(ResponseError):
            encode_head(200, bad)


def test_listen_with_an_http_url_uses_the_http_service() -> None:
    reactor = Reactor()
    listener = reactor.listen(url="http://127.0.0.1:0", handler=wsgi_app)
    try:
        assert listener.service == "http"
        assert listener.port > 0
    finally:
        listener.close()


# RFC 9110 section 5.6.7: IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
_IMF_FIXDATE = re.compile(
    rb"date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    rb"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT\r\n"
)


def test_date_line_is_formatted_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(headers, "time", SimpleNamespace(time=lambda: clock[0]))

    # The example date of RFC 9110 section 5.6.7, a quarter second in.
    second = calendar.timegm((1994, 11, 6, 8, 49, 37))
    clock[0] = second + 0.25
    first = date_line()
    assert first == b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    assert _IMF_FIXDATE.fullmatch(first)

    # Later in the same second: the very same line, not formatted again.
    clock[0] = second + 0.999
    assert date_line() is first

    # The next second: a new line.
    clock[0] = second + 1.0
    assert date_line() == b"date: Sun, 06 Nov 1994 08:49:38 GMT\r\n"

    # Any later time, in the same fixed-length form.
    clock[0] = calendar.timegm((2024, 3, 4, 5, 6, 7))
    later = date_line()
    assert later == b"date: Mon, 04 Mar 2024 05:06:07 GMT\r\n"
    assert _IMF_FIXDATE.fullmatch(later)
