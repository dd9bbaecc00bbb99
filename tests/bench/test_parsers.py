"""Reading what the echo client and the idle-connection client print."""

from __future__ import annotations

import pytest
from bench.echo.client import parse_output
from bench.http.idle import parse_alive_after, parse_report
from bench.http.idle_client import response_complete
from bench.model import MeasureError


def test_echo_line_gives_round_trips_per_second() -> None:
    result = parse_output("messages=450000 seconds=3.000000 errors=0 connections=100\n")

    assert result.messages == 450000
    assert result.connections == 100
    assert result.rate == pytest.approx(150000.0)


def test_echo_output_without_result_line_is_an_error() -> None:
    with pytest.raises(MeasureError, match="no result line"):
        parse_output("connect: Connection refused\n")


def test_idle_client_report_and_closing_count() -> None:
    report = parse_report("opened=9998 failed=2 alive=9990\n")

    assert (report.opened, report.failed, report.alive) == (9998, 2, 9990)
    assert parse_alive_after("alive_after=9990\n") == 9990
    assert parse_alive_after("Traceback ...") is None


def test_idle_client_report_must_match() -> None:
    with pytest.raises(MeasureError):
        parse_report("Traceback (most recent call last):")


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!", True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n", False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    ],
)
def test_response_is_complete_once_its_body_is_in(data: bytes, complete: bool) -> None:
    assert response_complete(data) is complete
