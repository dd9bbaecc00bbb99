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
from bench.processes import ServerFailed, free_port, running_server


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


def run_suite(
    suite: str,
    targets: Sequence[Target],
    plan: Sequence[tuple[Scenario, list[str]]],
    options: Options,
) -> Outcome:
    """Measure every planned (scenario, target) ``options.runs`` times.

    A server is started once per target per run and serves all of that
    target's scenarios in the run, then it is stopped (also on errors and
    Ctrl-C). A target that fails to start is recorded and skipped for that run;
    the others go on.
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

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"iodine-bench-{suite}-") as tmp:
        for run in range(options.runs):
            shift = run % len(runnable) if runnable else 0
            order = runnable[shift:] + runnable[:shift]
            for target in order:
                scenarios = [s for s, names in plan if target.name in names]
                _measure_target(
                    suite, run, target, scenarios, options, Path(tmp), outcome
                )
    outcome.seconds = time.monotonic() - started
    return outcome


def _measure_target(
    suite: str,
    run: int,
    target: Target,
    scenarios: Sequence[Scenario],
    options: Options,
    log_dir: Path,
    outcome: Outcome,
) -> None:
    port = free_port()
    try:
        with running_server(
            target.name, target.command(port), port, log_dir, target.env
        ) as server:
            for scenario in scenarios:
                label = f"[{suite}] run {run + 1}/{options.runs} {scenario.name} "
                label += f"{target.name}"
                try:
                    if scenario.warm_up and options.warm_up > 0:
                        scenario.measure(server, options.warm_up)
                    measured = scenario.measure(server, options.duration)
                except (MeasureError, subprocess.TimeoutExpired) as exc:
                    reason = _one_line(exc)
                    outcome.failures.append(
                        Failure(scenario.name, target.name, reason)
                    )
                    print(f"{label}: failed: {reason}")
                    continue
                outcome.samples.append(
                    Sample(run, scenario.name, target.name, measured)
                )
                print(f"{label}: {measured.value:,.0f} {scenario.unit}")
    except ServerFailed as exc:
        reason = _one_line(exc)
        for scenario in scenarios:
            outcome.failures.append(Failure(scenario.name, target.name, reason))
        print(f"[{suite}] run {run + 1}: {target.name} did not start: {exc}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
