"""``python -m bench {echo,http,ws,all} [--duration S] [--runs N] [--only NAME]``."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.model import MeasureError, SelectionError
from bench.report import RESULTS_DIR
from bench.runner import Options
from bench.suite import Suite, run


def _suites() -> dict[str, Suite]:
    from bench.echo.suite import SUITE as ECHO
    from bench.http.suite import SUITE as HTTP
    from bench.ws.suite import SUITE as WS

    return {"echo": ECHO, "http": HTTP, "ws": WS}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark iodine against its peers: servers pinned to CPU 0, the "
            "load generator to CPU 1, targets interleaved, medians of runs."
        ),
    )
    parser.add_argument(
        "suite", choices=["echo", "http", "ws", "all"], help="which suite to run"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds per measurement (default 5)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="interleaved runs; each figure is their median (default 5)",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=None,
        help="seconds of discarded load before each measurement "
        "(default: a fifth of --duration, at most 1)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="measure only these targets and/or scenarios (shell patterns, "
        "comma-separated or repeated), e.g. --only iodine-inline,uvloop-protocol",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR,
        help="where to write <suite>.md and <suite>.png (default bench/results)",
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help="print the report only; write nothing",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")
    if args.warm_up is None:
        args.warm_up = min(1.0, args.duration / 5)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every server
    # started so far is stopped on the way out rather than orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    options = Options(duration=args.duration, runs=args.runs, warm_up=args.warm_up)
    suites = _suites()
    names = list(suites) if args.suite == "all" else [args.suite]
    output = None if args.no_save else args.output
    try:
        for name in names:
            suite = suites[name]
            only = args.only
            if args.suite == "all" and only:
                # Under "all", a pattern need only name something in some suite.
                only = [
                    part
                    for pattern in only
                    for part in pattern.split(",")
                    if _names_something(suite, part)
                ]
                if not only:
                    continue
            print(run(suite, options, only, output))
    except (SelectionError, MeasureError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Servers were stopped on the way out (see bench.processes).
        print("bench: interrupted; every server started was stopped.", file=sys.stderr)
        return 130
    return 0


def _names_something(suite: Suite, pattern: str) -> bool:
    from bench.model import select

    try:
        select(suite.scenarios, suite.targets, [pattern])
    except SelectionError:
        return False
    return True
