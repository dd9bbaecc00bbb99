"""wrk: its command line, and what its report says.

wrk prints a human report, not JSON; :func:`parse_output` reads the lines the
bench needs and fails loudly if the format is not what it expects.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.model import MeasureError

LUA_DIR = Path(__file__).with_name("lua")


@dataclass(frozen=True)
class WrkResult:
    """The figures of one wrk run."""

    requests: int
    seconds: float
    requests_per_second: float
    latency_avg_ms: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    socket_errors: int
    non_2xx: int
    wrong_answers: int

    @property
    def errors(self) -> int:
        """Everything that was not a good answer: socket errors, non-2xx, and
        answers our Lua scripts rejected."""
        return self.socket_errors + self.non_2xx + self.wrong_answers


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"

_TOTAL = re.compile(rf"(\d+) requests in {_DURATION}")
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_LATENCY = re.compile(rf"^\s*Latency\s+{_DURATION}", re.MULTILINE)
_PERCENTILE = re.compile(rf"^\s*(50|99)(?:\.0+)?%\s+{_DURATION}", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRONG = re.compile(r"Wrong answers: (\d+)")


def to_ms(amount: str, unit: str) -> float:
    """A wrk duration (``850.12us``, ``1.20ms``, ``2.00s``) in milliseconds."""
    return float(amount) * _UNITS_MS[unit]


def parse_output(text: str) -> WrkResult:
    """Read a wrk report.

    Raises:
        MeasureError: the report lacks the totals (wrk failed, or its format
            changed).
    """
    total = _TOTAL.search(text)
    rate = _RATE.search(text)
    if total is None or rate is None:
        raise MeasureError(f"unexpected wrk output: {text.strip()[-300:]!r}")

    latency = _LATENCY.search(text)
    percentiles = {
        match[1]: to_ms(match[2], match[3]) for match in _PERCENTILE.finditer(text)
    }
    sockets = _SOCKET.search(text)
    non_2xx = _NON_2XX.search(text)
    wrong = _WRONG.search(text)
    return WrkResult(
        requests=int(total[1]),
        seconds=to_ms(total[2], total[3]) / 1000,
        requests_per_second=float(rate[1]),
        latency_avg_ms=to_ms(latency[1], latency[2]) if latency else None,
        latency_p50_ms=percentiles.get("50"),
        latency_p99_ms=percentiles.get("99"),
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        wrong_answers=int(wrong[1]) if wrong else 0,
    )


def command(
    url: str,
    connections: int,
    duration: float,
    script: str | None = None,
    timeout: float = 5.0,
) -> list[str]:
    """The wrk argv: one thread (it has one core), latency percentiles on.

    Args:
        url: Where to send the load (always a 127.0.0.1 address here).
        connections: Open connections, each with one request in flight (or
            one pipelined batch).
        duration: Seconds; wrk stops by itself. Rounded up to whole seconds,
            the only unit wrk takes.
        script: A Lua script under ``bench/http/lua``, by file name.
        timeout: Seconds before wrk counts a request as timed out.
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise MeasureError("wrk is not installed (apt-get install wrk)")
    argv = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(LUA_DIR / script)]
    return [*argv, url]
