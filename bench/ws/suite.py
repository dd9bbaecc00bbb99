"""The WebSocket suite: echo round trips and idle memory, and their bars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.echo.client import build, parse_output
from bench.http.idle import OPEN_SECONDS, measure_idle
from bench.http.idle_client import raise_open_files_limit
from bench.http.servers import iodine_http_missing
from bench.model import Bar, Measured, MeasureError, Scenario, Target
from bench.processes import Server, python, run_client
from bench.report import Column
from bench.suite import Suite

HERE = Path(__file__).parent

CONNECTIONS = 100
IDLE_CONNECTIONS = 10_000
MESSAGE_SIZE = 32
PATH = "/ws"
ASGI_APP = "bench.apps.ws:app"

# Upper bound on round trips per measurement, so a run stops by itself even if
# the clock misbehaves; far above what one core can echo in a minute.
MAX_MESSAGES = 100_000_000

# The servers and the load generator each hold one descriptor per connection,
# plus a few; the machine's hard limit is 20,000 here.
OPEN_FILES = IDLE_CONNECTIONS + 1024

# uvicorn's "--ws auto" picks the websockets library's sans-I/O protocol when
# websockets is installed (uvicorn 0.55); it is named here so that a change of
# default cannot change the figure silently.
UVICORN_WS = "websockets-sansio"

KU = "KiB/conn"


def _client() -> Path:
    return build("client", HERE)


def _ceiling() -> Target:
    return Target(
        name="c-ceiling",
        description=(
            "not a peer: a WebSocket echo server in C on epoll (bench/ws/server.c), "
            "the most round trips the client can drive; far above the rest = the "
            "client was not the limit"
        ),
        command=lambda port: [str(build("server", HERE)), "127.0.0.1", str(port)],
    )


def _launched(name: str, description: str) -> Target:
    return Target(
        name=name,
        description=description,
        command=lambda port: python("-m", "bench.ws.servers", name, str(port)),
        unavailable=iodine_http_missing() if name.startswith("iodine") else None,
    )


def _uvicorn() -> Target:
    return Target(
        name="uvicorn",
        description=(
            f"uvicorn with httptools + uvloop, --ws {UVICORN_WS} (its default "
            "with websockets installed), ASGI echo app, 1 process"
        ),
        command=lambda port: python(
            "-m",
            "uvicorn",
            ASGI_APP,
            "--host=127.0.0.1",
            f"--port={port}",
            "--loop=uvloop",
            "--http=httptools",
            f"--ws={UVICORN_WS}",
            "--no-access-log",
            "--log-level=warning",
        ),
    )


def _granian() -> Target:
    return Target(
        name="granian",
        description=(
            "granian --interface asgi, 1 worker, 1 runtime thread, HTTP/1, "
            "uvloop, ASGI echo app"
        ),
        command=lambda port: python(
            "-m",
            "granian",
            "--interface=asgi",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            "--runtime-threads=1",
            "--http=1",
            "--loop=uvloop",
            "--log-level=warning",
            "--no-access-log",
            ASGI_APP,
        ),
    )


TARGETS = [
    _launched(
        "iodine-native",
        "iodine-http; the ASGI app upgrades with the iodine.upgrade extension "
        "to a native handler (on_message -> conn.write) (bench/apps/ws.py)",
    ),
    _launched(
        "iodine-asgi",
        "iodine-http, the plain ASGI echo app (websocket.receive -> websocket.send)",
    ),
    _uvicorn(),
    _granian(),
    _launched(
        "picows",
        "picows (Cython), its listener API on uvloop with its defaults "
        "(bench/ws/servers.py); the fastest Python-callable WebSocket server",
    ),
    _launched(
        "uvloop-floor",
        "not a peer: a bare asyncio.Protocol echo on uvloop with no checks "
        "(bench/ws/servers.py), the least any Python server on uvloop's "
        "transports pays per message",
    ),
    _ceiling(),
]


def ws_echo(size: int) -> Callable[[Server, float], Measured]:
    """A measurement: ``CONNECTIONS`` WebSockets echoing ``size``-byte texts."""

    def measure(server: Server, duration: float) -> Measured:
        argv = [
            str(_client()),
            "echo",
            "127.0.0.1",
            str(server.port),
            PATH,
            str(CONNECTIONS),
            str(size),
            f"{duration:g}",
            str(MAX_MESSAGES),
        ]
        # Opening takes well under a second; the rest is slack for a loaded
        # machine before the run is declared hung and killed.
        ran = run_client(argv, server, timeout=duration + 90)
        if ran.returncode != 0:
            raise MeasureError(
                f"ws client exited {ran.returncode}: {_one_line(ran.stderr)}"
            )
        result = parse_output(ran.stdout)
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


def _one_line(text: str) -> str:
    """stderr joined into one line, the distinct lines once each: the report's
    note column keeps only a first line."""
    lines = dict.fromkeys(line.strip() for line in text.splitlines() if line.strip())
    return "; ".join(lines) or "no message"


def idle_per_connection(server: Server, duration: float) -> Measured:
    """KiB of server RSS per idle WebSocket: ``IDLE_CONNECTIONS`` are opened,
    each makes one round trip, and the RSS is read while they are held."""
    argv = [
        str(_client()),
        "idle",
        "127.0.0.1",
        str(server.port),
        PATH,
        str(IDLE_CONNECTIONS),
        str(MESSAGE_SIZE),
        f"{OPEN_SECONDS:g}",
    ]
    measured = measure_idle(server, IDLE_CONNECTIONS, argv)
    kept = measured.extra["connections_kept"]
    if kept < IDLE_CONNECTIONS / 2:
        # A per-connection figure over a handful of connections is noise.
        raise MeasureError(
            f"only {kept:.0f} of {IDLE_CONNECTIONS:,} WebSockets were held open:\n"
            + server.log_tail()
        )
    return idle_figure(measured)


def idle_figure(measured: Measured) -> Measured:
    """``measure_idle``'s result with KiB per connection as the figure and the
    RSS before and after as extras."""
    return Measured(
        value=measured.extra["kib_per_connection"],
        errors=measured.errors,
        extra={
            "rss_before_mib": measured.extra["rss_before_mib"],
            "rss_mib": measured.value,
            "connections_kept": measured.extra["connections_kept"],
        },
    )


SCENARIOS = [
    Scenario(
        name="echo",
        description=(
            f"{CONNECTIONS} WebSocket clients, each sending a {MESSAGE_SIZE}-byte "
            "masked text frame and waiting for its echo before the next; round "
            "trips per second"
        ),
        unit="msg/s",
        targets=tuple(target.name for target in TARGETS),
        measure=ws_echo(MESSAGE_SIZE),
    ),
    Scenario(
        name="idle-rss",
        description=(
            f"server RSS per idle WebSocket: {IDLE_CONNECTIONS:,} connections, "
            "each having echoed one message, (loaded RSS - RSS before) / "
            "connections"
        ),
        unit=KU,
        targets=("iodine-native", "iodine-asgi", "uvicorn", "picows"),
        measure=idle_per_connection,
        warm_up=False,
        higher_is_better=False,
    ),
]

BARS = [
    Bar("echo", "iodine-native", "picows", threshold=0.9),
    Bar("echo", "iodine-asgi", "uvicorn", threshold=3.0),
    Bar("idle-rss", "iodine-native", None, threshold=4.0, at_most=True, unit=KU),
    Bar("idle-rss", "iodine-asgi", None, threshold=8.0, at_most=True, unit=KU),
    # For reference: what the peers hold per connection, what the native path
    # saves over ASGI, and granian against uvicorn as a check of the machine.
    Bar("idle-rss", "uvicorn", None, unit=KU),
    Bar("idle-rss", "picows", None, unit=KU),
    Bar("echo", "iodine-native", "iodine-asgi"),
    Bar("echo", "iodine-asgi", "granian"),
    Bar("echo", "granian", "uvicorn"),
    # Headroom: how close the fastest Python server came to the client's limit.
    Bar("echo", "picows", "c-ceiling"),
    # The floor: how much of a bare uvloop echo iodine's own code costs, and
    # what picows' own transports save over uvloop's (the part of the picows
    # bar no server on uvloop can close).
    Bar("echo", "iodine-native", "uvloop-floor"),
    Bar("echo", "iodine-asgi", "uvloop-floor"),
    Bar("echo", "uvloop-floor", "picows"),
    Bar("echo", "uvloop-floor", "uvicorn"),
]


def _prepare() -> None:
    # Compile up front, so a compile error stops the suite at once.
    _client()
    build("server", HERE)
    # Servers inherit the limit from this process; the client raises its own.
    raise_open_files_limit(OPEN_FILES)


SUITE = Suite(
    name="ws",
    title="iodine benchmark: WebSocket",
    targets=TARGETS,
    scenarios=SCENARIOS,
    bars=BARS,
    packages=(
        "iodine-core",
        "iodine-http",
        "uvicorn",
        "httptools",
        "uvloop",
        "websockets",
        "granian",
        "picows",
    ),
    load_generator=(
        "a C epoll WebSocket client (bench/ws/client.c, built with gcc at run "
        f"time), {CONNECTIONS} connections ({IDLE_CONNECTIONS:,} for idle-rss)"
    ),
    prepare=_prepare,
    columns=(
        Column("rss_before_mib", "RSS before, MiB"),
        Column("rss_mib", "RSS loaded, MiB"),
    ),
    notes=(
        "`idle-rss` is (VmRSS with the connections held - VmRSS before) / "
        "connections opened, after each connection's handshake and one echo; "
        "`errors` there counts connections not held open.",
        "`iodine-native / iodine-asgi` is what handing the socket to a native "
        "handler saves over the ASGI message path.",
    ),
)
