"""The WebSocket suite: absolute bars, the idle figure, and the C client
checked against an independent server (the websockets library)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bench.echo.client import parse_output
from bench.http.idle import parse_alive_after, parse_report
from bench.model import Bar, Measured, Ratio, Row, ratios
from bench.report import ratios_table
from bench.ws import suite
from bench.ws.suite import _one_line, idle_figure

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="the WebSocket load generator is C, built with gcc",
)


def _row(scenario: str, target: str, median: float | None) -> Row:
    return Row(scenario, target, median, median, median, 1, 0, None, None, None, {})


def test_absolute_bar_judges_the_median_itself() -> None:
    rows = [_row("idle-rss", "iodine-native", 2.5), _row("idle-rss", "uvicorn", 30)]
    bars = [
        Bar("idle-rss", "iodine-native", None, 4.0, at_most=True, unit="KiB/conn"),
        Bar("idle-rss", "iodine-native", None, 2.0, at_most=True, unit="KiB/conn"),
        Bar("idle-rss", "uvicorn", None, unit="KiB/conn"),
        Bar("idle-rss", "picows", None, unit="KiB/conn"),
    ]

    met, missed, reference, missing = ratios(bars, rows)

    assert (met.value, met.verdict) == (2.5, "meets")
    assert missed.verdict == "misses by 25%"
    assert (reference.value, reference.verdict) == (30, "-")
    assert (missing.value, missing.verdict) == (None, "n/a")
    assert met.bar.label == "iodine-native"
    assert met.bar.targets == ("iodine-native",)


def test_ratios_table_shows_absolute_bars_in_their_unit() -> None:
    found = [
        Ratio(Bar("idle-rss", "iodine-asgi", None, 8.0, True, "KiB/conn"), 5.25),
        Ratio(Bar("echo", "iodine-asgi", "uvicorn", 3.0), 3.5),
    ]

    text = ratios_table(found)

    assert "| idle-rss | iodine-asgi | 5.25 KiB/conn | <= 8 KiB/conn | meets |" in text
    assert "| echo | iodine-asgi / uvicorn | 3.50x | >= 3x | meets |" in text


def test_idle_figure_is_kib_per_connection_with_rss_as_extras() -> None:
    measured = Measured(
        value=60.0,
        errors=3,
        extra={
            "rss_before_mib": 20.0,
            "kib_per_connection": 4.1,
            "connections_kept": 9997.0,
        },
    )

    figure = idle_figure(measured)

    assert figure.value == pytest.approx(4.1)
    assert figure.errors == 3
    assert figure.extra["rss_mib"] == 60.0
    assert figure.extra["rss_before_mib"] == 20.0


def test_client_errors_become_one_line_without_repeats() -> None:
    text = (
        "handshake refused: HTTP/1.1 404 Not Found\n"
        "handshake refused: HTTP/1.1 404 Not Found\n\n"
        "only 0 of 100 WebSockets opened\n"
    )

    assert _one_line(text) == (
        "handshake refused: HTTP/1.1 404 Not Found; only 0 of 100 WebSockets opened"
    )
    assert _one_line("") == "no message"


def test_suite_bars_name_targets_their_scenario_runs() -> None:
    scenarios = {scenario.name: scenario for scenario in suite.SCENARIOS}
    names = {target.name for target in suite.TARGETS}

    for scenario in suite.SCENARIOS:
        assert set(scenario.targets) <= names
    for bar in suite.BARS:
        assert set(bar.targets) <= set(scenarios[bar.scenario].targets), bar


# ------------------------------------------------- the C client, for real


@pytest.fixture
def websockets_server() -> Iterator[Callable[[Callable[[Any], None]], int]]:
    """Start a websockets (sync) server with a given handler; yield its port."""
    from websockets.sync.server import serve

    servers = []

    def start(handler: Callable[[Any], None]) -> int:
        server = serve(handler, "127.0.0.1", 0)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port: int = server.socket.getsockname()[1]
        return port

    yield start
    for server in servers:
        server.shutdown()


def _echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


def _shout(ws: Any) -> None:
    for message in ws:
        ws.send(message.upper())


def _client_argv(mode: str, port: int, count: int, size: int) -> list[str]:
    argv = [str(suite._client()), mode, "127.0.0.1", str(port), "/ws", str(count)]
    argv += [str(size), "0.4" if mode == "echo" else "10"]
    return [*argv, "1000000"] if mode == "echo" else argv


@needs_gcc
@pytest.mark.parametrize("size", [32, 300])
def test_client_echoes_through_a_reference_server(
    websockets_server: Callable[[Callable[[Any], None]], int], size: int
) -> None:
    port = websockets_server(_echo)

    done = subprocess.run(
        _client_argv("echo", port, 4, size),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    result = parse_output(done.stdout)
    assert result.messages > 10
    assert (result.errors, result.connections) == (0, 4)


@needs_gcc
def test_client_counts_a_wrong_echo_as_an_error(
    websockets_server: Callable[[Callable[[Any], None]], int],
) -> None:
    port = websockets_server(_shout)

    done = subprocess.run(
        _client_argv("echo", port, 3, 32),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    result = parse_output(done.stdout)
    assert (result.messages, result.errors) == (0, 3)
    assert "wrong echo" in done.stderr


@needs_gcc
def test_client_refused_handshake_says_what_the_server_answered() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def refuse() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=refuse, daemon=True).start()
        done = subprocess.run(
            _client_argv("echo", port, 1, 32),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert done.returncode == 1
    assert "handshake refused: HTTP/1.1 404 Not Found" in done.stderr


@needs_gcc
def test_idle_client_holds_connections_until_told(
    websockets_server: Callable[[Callable[[Any], None]], int],
) -> None:
    port = websockets_server(_echo)

    done = subprocess.run(
        _client_argv("idle", port, 20, 32),
        input="done\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    report = parse_report(done.stdout)
    assert (report.opened, report.failed, report.alive) == (20, 0, 20)
    assert parse_alive_after(done.stdout) == 20
