"""Reading wrk's report."""

from __future__ import annotations

import pytest
from bench.http.wrk import command, parse_output, to_ms
from bench.model import MeasureError

PLAIN = """\
Running 5s test @ http://127.0.0.1:8000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  310.52us   9.87ms   91.20%
    Req/Sec    47.38k     2.11k   50.90k    74.00%
  Latency Distribution
     50%    2.05ms
     75%    2.20ms
     90%    2.41ms
     99%    3.12ms
  235712 requests in 5.00s, 33.27MB read
Requests/sec:  47099.74
Transfer/sec:      6.65MB
"""

TROUBLED = """\
Running 2s test @ http://127.0.0.1:8000/upload
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   850.00us    1.20ms   1.02s    99.00%
    Req/Sec     1.20k   100.00     1.40k    70.00%
  Latency Distribution
     50%  800.00us
     75%    1.00ms
     90%    1.20ms
     99%    1.50s
  2402 requests in 2.00s, 280.00KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:   1200.50
Transfer/sec:    140.00KB
Wrong answers: 6
"""


def test_plain_report_gives_rate_totals_and_latency() -> None:
    result = parse_output(PLAIN)

    assert result.requests == 235712
    assert result.seconds == pytest.approx(5.0)
    assert result.requests_per_second == pytest.approx(47099.74)
    assert result.latency_avg_ms == pytest.approx(2.10)
    assert result.latency_p50_ms == pytest.approx(2.05)
    assert result.latency_p99_ms == pytest.approx(3.12)
    assert result.errors == 0


def test_errors_add_socket_errors_non_2xx_and_wrong_answers() -> None:
    result = parse_output(TROUBLED)

    assert result.socket_errors == 1 + 2 + 3 + 4
    assert result.non_2xx == 5
    assert result.wrong_answers == 6
    assert result.errors == 10 + 5 + 6
    assert result.latency_avg_ms == pytest.approx(0.85)
    assert result.latency_p99_ms == pytest.approx(1500.0)


def test_output_without_totals_is_an_error() -> None:
    with pytest.raises(MeasureError, match="unexpected wrk output"):
        parse_output("unable to connect to 127.0.0.1:8000 Connection refused\n")


@pytest.mark.parametrize(
    ("amount", "unit", "ms"),
    [("850.00", "us", 0.85), ("1.5", "ms", 1.5), ("2", "s", 2000.0), ("1", "m", 60e3)],
)
def test_durations_convert_to_milliseconds(amount: str, unit: str, ms: float) -> None:
    assert to_ms(amount, unit) == pytest.approx(ms)


def test_command_uses_one_thread_whole_seconds_and_the_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")

    argv = command("http://127.0.0.1:9/", 1000, 2.6, "pipeline.lua")

    assert argv[0] == "/usr/bin/wrk"
    assert "-t1" in argv
    assert "-c1000" in argv
    assert "-d3s" in argv
    assert argv[argv.index("-s") + 1].endswith("lua/pipeline.lua")
    assert argv[-1] == "http://127.0.0.1:9/"


def test_command_without_wrk_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)

    with pytest.raises(MeasureError, match="apt-get install wrk"):
        command("http://127.0.0.1:9/", 10, 1)
