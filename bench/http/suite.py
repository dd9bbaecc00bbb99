"""The HTTP suite: scenarios, who runs them, and the issue's bars."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from bench.http import servers, wrk
from bench.http.idle import measure_idle
from bench.model import Bar, Measured, MeasureError, Scenario
from bench.processes import Server, run_client
from bench.report import Column
from bench.suite import Suite

IDLE_CONNECTIONS = 10_000

ASGI = ("iodine-asgi", "granian-asgi", "uvicorn")
# The hello-world scenarios also measure the floor (http/floor_server.py).
ASGI_HELLO = (*ASGI, "uvloop-floor")
WSGI = ("iodine-wsgi", "granian-wsgi", "gunicorn-gthread")


def wrk_load(
    connections: int, script: str | None = None, path: str = "/"
) -> Callable[[Server, float], Measured]:
    """A measurement: wrk with ``connections`` connections for the duration."""

    def measure(server: Server, duration: float) -> Measured:
        url = f"http://127.0.0.1:{server.port}{path}"
        argv = wrk.command(url, connections, duration, script)
        # wrk stops by itself after the duration (plus its socket timeout);
        # past that margin it is hung and gets killed.
        ran = run_client(argv, server, timeout=duration + 30)
        if ran.returncode != 0:
            raise MeasureError(f"wrk exited {ran.returncode}: {ran.stderr.strip()}")
        result = wrk.parse_output(ran.stdout)
        if result.requests == 0:
            # wrk counts a response its HTTP parser rejects as a read error,
            # so read errors with no answers usually mean malformed responses.
            raise MeasureError(
                f"no good answer; wrk saw {result.socket_errors} socket errors "
                f"(read errors: malformed responses or closed connections) and "
                f"{result.non_2xx} non-2xx answers"
            )
        if server.process.poll() is not None:
            raise MeasureError(f"server died during the run:\n{server.log_tail()}")
        extra = {}
        # wrk records no latency for pipelined batches and prints zeros.
        if result.latency_p99_ms:
            extra["p99_ms"] = result.latency_p99_ms
        return Measured(
            value=result.requests_per_second,
            errors=result.errors,
            server_cpu=ran.server_cpu,
            client_cpu=ran.client_cpu,
            others_cpu=ran.others_cpu,
            others_top=ran.others_top,
            extra=extra,
        )

    return measure


def _idle(server: Server, duration: float) -> Measured:
    return measure_idle(server, IDLE_CONNECTIONS)


SCENARIOS = [
    Scenario(
        name="asgi-c100",
        description="ASGI hello world, 100 keep-alive connections",
        unit="req/s",
        targets=ASGI_HELLO,
        measure=wrk_load(100),
    ),
    Scenario(
        name="asgi-c1000",
        description="ASGI hello world, 1000 keep-alive connections",
        unit="req/s",
        targets=ASGI_HELLO,
        measure=wrk_load(1000),
    ),
    Scenario(
        name="pipeline-16",
        description=(
            "ASGI hello world, 100 connections, 16 requests pipelined per write "
            "(bench/http/lua/pipeline.lua); every response counts"
        ),
        unit="req/s",
        targets=ASGI_HELLO,
        measure=wrk_load(100, "pipeline.lua"),
    ),
    Scenario(
        name="wsgi-c100",
        description="WSGI hello world, 100 keep-alive connections",
        unit="req/s",
        targets=WSGI,
        measure=wrk_load(100),
    ),
    Scenario(
        name="upload-1mib",
        description=(
            "10 connections each POSTing 1 MiB bodies that the app reads whole "
            "and answers with the length (bench/http/lua/upload.lua checks it)"
        ),
        unit="req/s",
        targets=ASGI + WSGI,
        measure=wrk_load(10, "upload.lua", "/upload"),
    ),
    Scenario(
        name="idle-rss",
        description=(
            f"server RSS (VmRSS) with {IDLE_CONNECTIONS:,} idle keep-alive "
            "connections, each having made one request"
        ),
        unit="MiB",
        targets=("iodine-asgi", "uvicorn"),
        measure=_idle,
        warm_up=False,
        higher_is_better=False,
    ),
]

BARS = [
    Bar("asgi-c100", "iodine-asgi", "granian-asgi", threshold=1.2),
    Bar("asgi-c100", "iodine-asgi", "uvicorn", threshold=2.3),
    Bar("asgi-c1000", "iodine-asgi", "granian-asgi", threshold=1.2),
    Bar("asgi-c1000", "iodine-asgi", "uvicorn", threshold=2.3),
    Bar("pipeline-16", "iodine-asgi", "granian-asgi", threshold=2.5),
    Bar("wsgi-c100", "iodine-wsgi", "granian-wsgi", threshold=1.0),
    Bar("wsgi-c100", "iodine-wsgi", "gunicorn-gthread", threshold=4.0),
    Bar("upload-1mib", "iodine-asgi", "granian-asgi"),
    Bar("upload-1mib", "iodine-asgi", "uvicorn"),
    Bar("upload-1mib", "iodine-wsgi", "gunicorn-gthread"),
    Bar("idle-rss", "iodine-asgi", "uvicorn", threshold=1.0, at_most=True),
    # The peers against each other: a check that this machine behaves like
    # the one the figures come from (granian ~1.85x uvicorn there).
    Bar("asgi-c100", "granian-asgi", "uvicorn"),
    # Against the floor: the share of it iodine keeps, and the most any
    # server on uvloop + httptools could reach against each peer.
    Bar("asgi-c100", "iodine-asgi", "uvloop-floor"),
    Bar("asgi-c100", "uvloop-floor", "granian-asgi"),
    Bar("asgi-c100", "uvloop-floor", "uvicorn"),
    Bar("pipeline-16", "iodine-asgi", "uvloop-floor"),
    Bar("pipeline-16", "uvloop-floor", "granian-asgi"),
]


def _check_wrk() -> None:
    if shutil.which("wrk") is None:
        raise MeasureError("the HTTP suite needs wrk: apt-get install wrk")


SUITE = Suite(
    name="http",
    title="iodine benchmark: HTTP",
    targets=servers.targets(),
    scenarios=SCENARIOS,
    bars=BARS,
    packages=(
        "iodine-core",
        "iodine-http",
        "uvicorn",
        "httptools",
        "uvloop",
        "granian",
        "gunicorn",
    ),
    load_generator=(
        "wrk (1 thread; the idle-rss scenario uses bench/http/idle_client.py)"
    ),
    prepare=_check_wrk,
    columns=(
        Column("p99_ms", "p99 ms"),
        Column("rss_before_mib", "RSS before, MiB"),
        Column("kib_per_connection", "KiB / conn"),
    ),
    notes=(
        "`errors` adds wrk's socket errors, non-2xx answers and (upload) wrong "
        "lengths over all runs; for idle-rss it counts connections not held open.",
    ),
)
