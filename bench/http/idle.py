"""Server memory with many idle keep-alive connections.

The client (bench/http/idle_client.py) runs on the load generator's CPU, opens
the connections, makes one request on each and holds them; meanwhile this side
reads the server's VmRSS from /proc.
"""

from __future__ import annotations

import re
import selectors
import subprocess
import time
from dataclasses import dataclass

from bench.model import Measured, MeasureError
from bench.processes import CLIENT_CPU, ROOT, Server, pinned, python, rss_bytes

MIB = 1024 * 1024

# Seconds to open every connection; 10,000 take about two here.
OPEN_SECONDS = 60.0

# Let the server finish whatever it does after a request (timers, buffers
# returned to pools) before its memory is read.
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class IdleReport:
    """The client's first line."""

    opened: int
    failed: int
    alive: int


_REPORT = re.compile(r"opened=(\d+) failed=(\d+) alive=(\d+)")
_AFTER = re.compile(r"alive_after=(\d+)")


def parse_report(line: str) -> IdleReport:
    """Read ``opened=N failed=F alive=A``.

    Raises:
        MeasureError: the line is something else.
    """
    match = _REPORT.search(line)
    if match is None:
        raise MeasureError(f"unexpected idle client output: {line!r}")
    return IdleReport(int(match[1]), int(match[2]), int(match[3]))


def parse_alive_after(text: str) -> int | None:
    match = _AFTER.search(text)
    return int(match[1]) if match else None


def measure_idle(server: Server, count: int, argv: list[str] | None = None) -> Measured:
    """RSS of ``server`` in MiB while ``count`` idle keep-alive connections are
    open. Extras: the RSS before (MiB), the cost per connection (KiB), and how
    many connections were still open when memory was read.

    ``argv`` is another client that speaks the same lines (the WebSocket
    suite's); by default ``bench/http/idle_client.py`` opens the connections.
    """
    baseline = rss_bytes(server.pid)
    if argv is None:
        argv = python(
            "-m",
            "bench.http.idle_client",
            str(server.port),
            str(count),
            f"{OPEN_SECONDS:g}",
        )
    client = subprocess.Popen(
        pinned(CLIENT_CPU, argv),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = _read_line(client, OPEN_SECONDS + 15)
        report = parse_report(line)
        time.sleep(SETTLE_SECONDS)
        loaded = rss_bytes(server.pid)
        if server.process.poll() is not None:
            raise MeasureError(f"server died holding connections:\n{server.log_tail()}")

        # Let the client go; it says how many connections survived the wait.
        out, err = client.communicate(b"done\n", timeout=30)
        alive_after = parse_alive_after(out.decode())
        if alive_after is None:
            raise MeasureError(f"idle client failed: {err.decode().strip()[-300:]}")
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()

    kept = min(report.alive, alive_after)
    return Measured(
        value=loaded / MIB,
        errors=count - kept,
        extra={
            "rss_before_mib": baseline / MIB,
            "kib_per_connection": (loaded - baseline) / max(report.opened, 1) / 1024,
            "connections_kept": float(kept),
        },
    )


def _read_line(client: subprocess.Popen[bytes], timeout: float) -> str:
    assert client.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(client.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise MeasureError(f"idle client said nothing within {timeout:.0f} s")
    line = client.stdout.readline().decode()
    if not line:
        err = client.stderr.read().decode() if client.stderr else ""
        raise MeasureError(f"idle client exited early: {err.strip()[-300:]}")
    return line
