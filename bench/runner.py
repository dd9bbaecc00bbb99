"""The interleaved run: every target, then again, so drift hits all alike.

A machine's speed drifts over minutes (frequency scaling, a noisy neighbour on
the host). Measuring target A five times and then target B five times would
fold that drift into the ratio; instead each run visits every target once,
in an order rotated from run to run, and each target's figure is the median
over runs.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.model import Failure, MeasureError, Sample, Scenario, Target
from bench.processes import (
    ServerFailed,
    cpu_probe,
    free_port,
    running_server,
    wait_for_quiet,
)

# Another process taking more than this share of a core during a measurement
# makes it suspect: it is taken once more and the quieter of the two is kept.
NOISY_SHARE = 0.25


@dataclass
class Options:
    """How long and how often to measure."""

    duration: float
    runs: int
    warm_up: float


@dataclass
class Outcome:
    """Everything a suite's run produced."""

    samples: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # The server core's speed before and after the run (see cpu_probe).
    probes: tuple[float | None, float | None] = (None, None)


def run_suite(
    suite: str,
    targets: Sequence[Target],
    plan: Sequence[tuple[Scenario, list[str]]],
    options: Options,
) -> Outcome:
    """Measure every planned (scenario, target) ``options.runs`` times.

    Each measurement gets its own server, stopped right after (also on errors
    and Ctrl-C). A target that fails is recorded and the others go on.
    """
    outcome = Outcome()
    by_name = {target.name: target for target in targets}
    wanted = [
        by_name[name]
        for name in dict.fromkeys(name for _, names in plan for name in names)
    ]
    for target in wanted:
        if target.unavailable:
            outcome.unavailable[target.name] = target.unavailable
            print(f"[{suite}] {target.name}: unavailable ({target.unavailable})")
    runnable = [target for target in wanted if not target.unavailable]

    before = cpu_probe()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"iodine-bench-{suite}-") as tmp:
        for run in range(options.runs):
            for scenario, names in plan:
                mine = [target for target in runnable if target.name in names]
                shift = run % len(mine) if mine else 0
                for target in mine[shift:] + mine[:shift]:
                    label = f"[{suite}] run {run + 1}/{options.runs} "
                    label += f"{scenario.name} {target.name}"
                    _measure(
                        label,
                        target,
                        scenario,
                        run=run,
                        options=options,
                        log_dir=Path(tmp),
                        outcome=outcome,
                    )
    outcome.seconds = time.monotonic() - started
    outcome.probes = (before, cpu_probe())
    return outcome


def _measure(
    label: str,
    target: Target,
    scenario: Scenario,
    *,
    run: int,
    options: Options,
    log_dir: Path,
    outcome: Outcome,
) -> None:
    # A fresh server for every measurement: no scenario inherits the heap,
    # caches or connections another left behind (the memory scenario would
    # otherwise read what 1000 connections grew).
    wait_for_quiet()
    port = free_port()
    try:
        with running_server(
            target.name, target.command(port), port, log_dir, target.env
        ) as server:
            if scenario.warm_up and options.warm_up > 0:
                scenario.measure(server, options.warm_up)
            measured = scenario.measure(server, options.duration)
            if (measured.others_cpu or 0.0) > NOISY_SHARE:
                print(
                    f"{label}: other processes took {measured.others_cpu:.0%} "
                    f"of a core meanwhile ({', '.join(measured.others_top)}); "
                    "measuring again"
                )
                wait_for_quiet()
                again = scenario.measure(server, options.duration)
                if (again.others_cpu or 0.0) < (measured.others_cpu or 0.0):
                    measured = again
    except (ServerFailed, MeasureError, subprocess.TimeoutExpired) as exc:
        reason = _one_line(exc)
        outcome.failures.append(Failure(scenario.name, target.name, reason))
        print(f"{label}: failed: {exc}")
        return
    outcome.samples.append(Sample(run, scenario.name, target.name, measured))
    noise = measured.others_cpu or 0.0
    note = f" (other processes: {noise:.0%} of a core)" if noise > 0.05 else ""
    print(f"{label}: {measured.value:,.0f} {scenario.unit}{note}", flush=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
