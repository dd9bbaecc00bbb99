"""The examples, run as real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import iodine

EXAMPLES = Path(__file__).parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int, timeout: float = 10) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}; got {data!r}")
        data += chunk
    return data


@pytest.fixture
def serve() -> Iterator[object]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        name: str, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            env={**os.environ, "PORT": str(port), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process, port

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_echo_example(serve: object) -> None:
    process, port = serve("echo.py")  # type: ignore[operator]
    # The startup line, then the one the run_after timer logs a second later.
    lines = []
    while not lines or "Echo server listening on port" not in lines[-1]:
        lines.append(process.stdout.readline().decode())  # type: ignore[union-attr]
    # The default settings, as run() reports them, from this very process.
    startup = (
        f"[{process.pid}] INFO iodine {iodine.__version__} running: "
        f"tcp://127.0.0.1:{port} (raw); 8 threads, 1 worker, callbacks inline.\n"
    )
    assert any(line.endswith(startup) for line in lines), lines
    with connect(port) as sock:
        read_until(sock, b"'bye' to leave.\r\n")
        sock.sendall(b"hello\r\n")
        assert read_until(sock, b"\r\n") == b"Echo: hello\r\n"
        sock.sendall(b"bye\r\n")
        assert read_until(sock, b"Goodbye.\r\n").endswith(b"Goodbye.\r\n")
        assert sock.recv(1) == b""
    # A graceful stop on SIGTERM tells open connections and exits with 0.
    with connect(port) as sock:
        read_until(sock, b"'bye' to leave.\r\n")
        process.send_signal(signal.SIGTERM)
        read_until(sock, b"Server is shutting down, goodbye.\r\n")
    assert process.wait(10) == 0


def test_chat_example_login_then_chat(serve: object) -> None:
    process, port = serve("chat.py")  # type: ignore[operator]
    with connect(port) as ada, connect(port) as bob:
        read_until(ada, b"nickname to join the chat: ")
        ada.sendall(b"ada\r\n")
        read_until(ada, b"Welcome, ada! 1 here now.\r\n")
        read_until(bob, b"nickname to join the chat: ")
        bob.sendall(b"ada\r\n")
        read_until(bob, b"try another nickname: ")
        bob.sendall(b"bob\r\n")
        read_until(bob, b"Welcome, bob! 2 here now.\r\n")
        read_until(ada, b"* bob joined the chat.\r\n")
        bob.sendall(b"hi ada\r\n")
        read_until(ada, b"bob: hi ada\r\n")
        bob.sendall(b"bye\r\n")
        read_until(ada, b"* bob left the chat.\r\n")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def test_chat_example_pings_idle_members_and_drops_slow_logins(serve: object) -> None:
    # One second each; the reactor checks idle connections once a second, so
    # each event comes within about two.
    env = {"CHAT_IDLE": "1", "CHAT_LOGIN_WAIT": "1"}
    process, port = serve("chat.py", env)  # type: ignore[operator]
    with connect(port) as ada, connect(port) as slow:
        read_until(ada, b"nickname to join the chat: ")
        ada.sendall(b"ada\r\n")
        read_until(ada, b"Welcome, ada! 1 here now.\r\n")
        started = time.monotonic()
        read_until(ada, b"Server: ping (say something to stay)\r\n")
        assert 0.5 < time.monotonic() - started < 3

        read_until(slow, b"Too slow to log in, goodbye.\r\n")
        slow.settimeout(3)
        assert slow.recv(4096) == b""  # closed after the goodbye
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
