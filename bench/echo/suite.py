"""The echo suite: what runs against what, and the bars it answers to."""

from __future__ import annotations

from collections.abc import Callable

from bench.echo import client
from bench.model import Bar, Measured, MeasureError, Scenario, Target
from bench.processes import Server, python, run_client
from bench.suite import Suite

CONNECTIONS = 100

# Upper bound on round trips per measurement, so a run stops by itself even if
# the clock misbehaves; far above what one core can echo in a minute.
MAX_MESSAGES = 100_000_000

_DESCRIPTIONS = {
    "iodine-inline": "iodine native handler, callbacks inline (the default)",
    "iodine-threads": 'iodine native handler, settings.callbacks = "threads"',
    "uvloop-protocol": "bare uvloop asyncio.Protocol: data_received -> write",
    "uvloop-buffered": "bare uvloop asyncio.BufferedProtocol, one shared buffer",
    "c-ceiling": (
        "not a peer: an epoll echo server in C (bench/echo/server.c), the most "
        "round trips the client can drive; far above the rest = client not the limit"
    ),
}


def _target(kind: str) -> Target:
    if kind == "c-ceiling":
        return Target(
            name=kind,
            description=_DESCRIPTIONS[kind],
            command=lambda port: [str(client.build("server")), "127.0.0.1", str(port)],
        )
    return Target(
        name=kind,
        description=_DESCRIPTIONS[kind],
        command=lambda port: python("-m", "bench.echo.servers", kind, str(port)),
    )


TARGETS = [_target(kind) for kind in _DESCRIPTIONS]


def echo_load(size: int) -> Callable[[Server, float], Measured]:
    """A measurement: ``CONNECTIONS`` clients echoing ``size``-byte messages."""

    def measure(server: Server, duration: float) -> Measured:
        argv = [
            str(client.build()),
            "127.0.0.1",
            str(server.port),
            str(CONNECTIONS),
            str(size),
            f"{duration:g}",
            str(MAX_MESSAGES),
        ]
        # Connecting takes well under a second; the rest is slack for a
        # loaded machine before the run is declared hung and killed.
        ran = run_client(argv, server, timeout=duration + 30)
        if ran.returncode != 0:
            raise MeasureError(
                f"echo client exited {ran.returncode}: {ran.stderr.strip()}"
            )
        result = client.parse_output(ran.stdout)
        if server.process.poll() is not None:
            raise MeasureError(f"server died during the run:\n{server.log_tail()}")
        return Measured(
            value=result.rate,
            errors=result.errors,
            server_cpu=ran.server_cpu,
            client_cpu=ran.client_cpu,
            others_cpu=ran.others_cpu,
            others_top=ran.others_top,
        )

    return measure


SCENARIOS = [
    Scenario(
        name="small",
        description=(
            f"{CONNECTIONS} connections, each sending a 32-byte message and "
            "waiting for its echo before the next; round trips per second"
        ),
        unit="msg/s",
        targets=tuple(_DESCRIPTIONS),
        measure=echo_load(32),
    ),
    Scenario(
        name="16k",
        description=(
            f"{CONNECTIONS} connections echoing 16 KiB messages: the read path "
            "(buffer copies) weighs more than per-call overhead"
        ),
        unit="msg/s",
        targets=tuple(_DESCRIPTIONS),
        measure=echo_load(16 * 1024),
    ),
]

BARS = [
    Bar("small", "iodine-inline", "uvloop-protocol", threshold=0.8),
    Bar("small", "iodine-threads", "iodine-inline"),
    Bar("small", "uvloop-buffered", "uvloop-protocol"),
    Bar("16k", "iodine-inline", "uvloop-protocol"),
    Bar("16k", "uvloop-buffered", "uvloop-protocol"),
    # Headroom: how close the fastest Python server came to the client's limit.
    Bar("small", "uvloop-protocol", "c-ceiling"),
    Bar("16k", "uvloop-protocol", "c-ceiling"),
]

SUITE = Suite(
    name="echo",
    title="iodine benchmark: raw TCP echo",
    targets=TARGETS,
    scenarios=SCENARIOS,
    bars=BARS,
    packages=("iodine-core", "uvloop"),
    load_generator=(
        "a C epoll client (bench/echo/client.c, built with gcc at run time), "
        f"{CONNECTIONS} connections"
    ),
    prepare=client.build_all,
    notes=(
        "`iodine-threads / iodine-inline` shows what a hand-off to the thread "
        "pool costs per callback; `uvloop-buffered / uvloop-protocol` shows "
        "what uvloop's BufferedProtocol read path (the one iodine-core uses) "
        "saves or costs on its own.",
        "`c-ceiling` is what the client can drive at all. On loopback a good "
        "part of each round trip is kernel TCP work done in the sender's "
        "context, so both sides' CPU shares are high even for the C server.",
    ),
)
