"""The HTTP floor server (``bench/http/floor_server.py``): it has to send what
iodine sends, or the floor ratios in the bench report compare different work."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.conftest import Server, read_until, read_until_close

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def floor() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http.floor_server", str(port)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture(scope="module")
def iodine_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    log = tmp_path_factory.mktemp("iodine") / "server.log"
    server = Server("bench.apps.asgi:app", {}, Path(log))
    yield server.port
    server.stop()


def answers(port: int, count: int) -> bytes:
    """What the server at ``port`` answers to ``count`` pipelined GETs sent
    in one write, read until the last body (kept-alive: no close to wait for)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST * count)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"Hello, world!") < count and time.monotonic() < deadline:
            data += read_until(sock, b"Hello, world!")
        return data


def undated(answer: bytes) -> bytes:
    return re.sub(rb"(?i)\r\ndate: [^\r]*", b"\r\ndate: -", answer)


def test_pipelined_answers_are_iodines_bytes(floor: int, iodine_port: int) -> None:
    answer = answers(floor, 16)

    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 16
    assert answer.endswith(b"Hello, world!")
    assert undated(answer) == undated(answers(iodine_port, 16))


def test_malformed_request_closes_without_an_answer(floor: int) -> None:
    with socket.create_connection(("127.0.0.1", floor), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        assert read_until_close(sock) == b""
