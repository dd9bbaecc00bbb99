"""Lifecycle hooks, graceful shutdown and idle timeouts."""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

import iodine
from iodine import CloseReason, Connection, Reactor

from .conftest import Runner, client, recv_exactly, wait_for


def test_hook_order(reactor: Reactor, runner: Runner) -> None:
    calls: list[str] = []
    for number in (1, 2):
        for event in ("pre_start", "on_start", "start_shutdown", "on_finish"):
            reactor.hooks.add(event, lambda e=event, n=number: calls.append(f"{e} {n}"))
    reactor.hooks.add("before_fork", lambda: calls.append("before_fork"))
    runner.start()
    runner.stop()
    assert calls == [
        "pre_start 1",
        "pre_start 2",
        "on_start 1",
        "on_start 2",
        "start_shutdown 2",
        "start_shutdown 1",
        "on_finish 2",
        "on_finish 1",
    ]


def test_unknown_hook_event_is_rejected(reactor: Reactor) -> None:
    with pytest.raises(ValueError, match="unknown lifecycle event"):
        reactor.hooks.add("on_lunch", lambda: None)


def test_failing_hook_does_not_stop_the_server(
    reactor: Reactor, runner: Runner
) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("hook failed")

    reactor.hooks.add("on_start", broken)
    reactor.hooks.add("on_start", lambda: calls.append("second"))
    runner.start()
    wait_for(lambda: calls == ["second"])


def test_stop_calls_on_shutdown_then_closes(reactor: Reactor, runner: Runner) -> None:
    events: list[str] = []

    class Polite:
        def on_shutdown(self, conn: Connection) -> None:
            events.append("shutdown")
            conn.write(b"server going away\n")

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            events.append(f"close {reason}")

    listener = reactor.listen(port=0, handler=Polite)
    runner.start()
    with client(listener.port) as sock:
        wait_for(lambda: reactor.connections)
        stopper = threading.Thread(target=runner.stop)
        stopper.start()
        # What on_shutdown wrote arrives before the close.
        assert recv_exactly(sock, 18) == b"server going away\n"
        assert sock.recv(1) == b""
        stopper.join(10)
    assert events == ["shutdown", "close shutdown"]


def test_shutdown_timeout_closes_stubborn_connections(
    reactor: Reactor, runner: Runner
) -> None:
    reactor.settings.shutdown_timeout = 0.5
    reactor.settings.callbacks = "threads"
    reasons: list[CloseReason] = []

    class Stubborn:
        def on_shutdown(self, conn: Connection) -> None:
            time.sleep(2)  # outlasts the shutdown timeout

        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            reasons.append(reason)

    listener = reactor.listen(port=0, handler=Stubborn)
    runner.start()
    with client(listener.port) as sock:
        wait_for(lambda: reactor.connections)
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 5
        sock.settimeout(5)
        assert sock.recv(1) == b""


def test_stop_before_start_returns_at_once(reactor: Reactor) -> None:
    reactor.stop()
    # stop() before run() is remembered, so run() starts and stops at once.
    finished = threading.Event()
    thread = threading.Thread(target=lambda: (reactor.run(), finished.set()))
    thread.start()
    thread.join(10)
    assert finished.is_set()


def test_reactor_runs_again_after_stop(reactor: Reactor) -> None:
    for _ in range(2):
        runner = Runner(reactor)
        listener = reactor.listen(port=0, handler=_Echo)
        runner.start()
        with client(listener.port) as sock:
            sock.sendall(b"again")
            assert recv_exactly(sock, 5) == b"again"
        runner.stop()


class _Echo:
    def on_message(self, conn: Connection, data: bytes) -> None:
        conn.write(data)


def test_idle_timeout_closes_without_on_timeout(
    reactor: Reactor, runner: Runner
) -> None:
    reasons: list[CloseReason] = []

    class Quiet:
        def on_close(self, conn: Connection, reason: CloseReason) -> None:
            reasons.append(reason)

    listener = reactor.listen(port=0, handler=Quiet, timeout=1)
    runner.start()
    with client(listener.port) as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b""
    wait_for(lambda: reasons)
    assert reasons == [CloseReason.TIMEOUT]


@pytest.mark.parametrize("name", ["on_timeout", "ping"])
def test_on_timeout_pings_and_keeps_the_connection(
    reactor: Reactor, runner: Runner, name: str
) -> None:
    pings: list[int] = []

    def ping(self: object, conn: Connection) -> None:
        pings.append(1)
        conn.write(b"ping\n")

    handler = type("Pinger", (), {name: ping})
    listener = reactor.listen(port=0, handler=handler)

    runner.start()
    with client(listener.port) as sock:
        wait_for(lambda: reactor.connections)
        conn = next(iter(reactor.connections))
        assert isinstance(conn, Connection)
        conn.timeout = 1
        assert recv_exactly(sock, 10, timeout=6) == b"ping\nping\n"
    assert len(pings) >= 2


def test_activity_postpones_the_timeout(reactor: Reactor, runner: Runner) -> None:
    class Echo(_Echo):
        pass

    listener = reactor.listen(port=0, handler=Echo, timeout=1.5)
    runner.start()
    with client(listener.port) as sock:
        for _ in range(6):  # 3 s of chatter, twice the timeout
            sock.sendall(b".")
            assert recv_exactly(sock, 1) == b"."
            time.sleep(0.5)


def test_workers_above_one_are_refused(reactor: Reactor) -> None:
    with pytest.raises(ValueError, match="worker processes are not available"):
        reactor.run(workers=2)
    assert not reactor.is_running


@pytest.mark.parametrize("threads_said", [(1, "1 thread"), (3, "3 threads")])
def test_startup_line_states_version_addresses_threads_and_workers(
    reactor: Reactor,
    runner: Runner,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    threads_said: tuple[int, str],
) -> None:
    threads, said = threads_said
    reactor.settings.threads = threads
    tcp = reactor.listen(port=0, handler=_Echo)
    path = str(tmp_path / "app.sock")
    reactor.listen(address=path, handler=_Echo)
    with caplog.at_level(logging.INFO, logger="iodine.core"):
        runner.start()
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "iodine.core" and " running: " in record.getMessage()
    ]
    assert lines == [
        f"iodine {iodine.__version__} running: "
        f"tcp://127.0.0.1:{tcp.port} (raw), unix://{path} (raw); "
        f"{said}, 1 worker, callbacks inline."
    ]


def test_version_is_the_one_in_pyproject() -> None:
    # The start-up line reports iodine.__version__; it must be the released one.
    pyproject = Path(__file__).parents[2] / "packages/iodine-core/pyproject.toml"
    with pyproject.open("rb") as file:
        assert iodine.__version__ == tomllib.load(file)["project"]["version"]
