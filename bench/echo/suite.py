"""The echo suite: what runs against what, and the bars it answers to."""

from __future__ import annotations

from bench.echo import client
from bench.model import Bar, MeasureError, Measured, Scenario, Target
from bench.processes import Server, python, run_client
from bench.suite import Suite

CONNECTIONS = 100

# Upper bound on round trips per measurement, so a run stops by itself even if
# the clock misbehaves; far above what one core can echo in a minute.
MAX_MESSAGES = 100_000_000


def _server(kind: str) -> Target:
    descriptions = {
        "iodine-inline": "iodine native handler, callbacks inline (the default)",
        "iodine-threads": 'iodine native handler, settings.callbacks = "threads"',
        "uvloop-protocol": "bare uvloop asyncio.Protocol: data_received -> write",
        "uvloop-buffered": "bare uvloop asyncio.BufferedProtocol, shared buffer",
    }
    return Target(
        name=kind,
        description=descriptions[kind],
        command=lambda port: python("-m", "bench.echo.servers", kind, str(port)),
    )


TARGETS = [
    _server(kind)
    for kind in ("iodine-inline", "iodine-threads", "uvloop-protocol", "uvloop-buffered")
]
ALL = tuple(target.name for target in TARGETS)


def _echo(size: int) -> Scenario.measure.__class__:  # type: ignore[name-defined]
    raise NotImplementedError
