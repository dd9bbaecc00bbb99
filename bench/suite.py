"""A suite from start to finish: select, measure, summarise, report, chart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.model import Bar, Scenario, Target, ratios, select, summarize
from bench.report import Column, make_header, render, speed_line, write_report
from bench.runner import Options, run_suite


@dataclass(frozen=True)
class Suite:
    """Everything one ``python -m bench NAME`` needs.

    Attributes:
        prepare: Called once before anything starts (build a tool, check that
            one is installed); raises ``MeasureError`` if the suite cannot run.
        notes: Lines added to the report to help read it.
    """

    name: str
    title: str
    targets: Sequence[Target]
    scenarios: Sequence[Scenario]
    bars: Sequence[Bar]
    packages: Sequence[str]
    load_generator: str
    prepare: Callable[[], object] = lambda: None
    columns: Sequence[Column] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def run(
    suite: Suite, options: Options, only: Sequence[str], output: Path | None
) -> str:
    """Run ``suite`` and return its markdown report; write the report and the
    chart under ``output`` unless it is None."""
    plan = select(suite.scenarios, suite.targets, only)
    suite.prepare()
    outcome = run_suite(suite.name, suite.targets, plan, options)

    # Summarise, in the order the suite declares.
    rows = summarize(plan, outcome.samples, outcome.failures, outcome.unavailable)
    # Only the bars whose both sides were meant to run (--only may drop some).
    planned = {(scenario.name, name) for scenario, names in plan for name in names}
    bars = [
        bar
        for bar in suite.bars
        if all((bar.scenario, name) in planned for name in bar.targets)
    ]
    found = ratios(bars, rows)

    # Report what was run and how.
    method = (
        f"servers pinned to CPU 0 (`taskset -c 0`), {suite.load_generator} pinned "
        "to CPU 1 (`taskset -c 1`), all on 127.0.0.1; every target in every run, "
        "in an order rotated from run to run; "
        f"{options.duration:g} s per measurement after a {options.warm_up:g} s "
        f"warm-up; median of {options.runs} run(s); the whole suite took "
        f"{outcome.seconds:.0f} s"
    )
    header = make_header(
        suite.title, method, suite.packages, speed=speed_line(outcome.probes)
    )
    targets = {target.name: target for target in suite.targets}
    used = dict.fromkeys(name for _, names in plan for name in names)
    notes = [f"`{name}`: {targets[name].description}" for name in used]
    notes += suite.notes
    notes.append(
        "`server CPU`, `client CPU`: CPU time of the server (all its processes "
        "and threads) and of the load generator over the run's wall time, as a "
        "share of one core. Loopback TCP work done in softirq context is not "
        "in either. `other CPU`: the same for every other process on the "
        "machine; above a few percent something else competed for the cores "
        "(the bench waits for a quiet machine before each measurement and "
        "measures again, once, when others took over 25 % of a core, and "
        "leaves runs where they took over 50 % out of the median when quieter "
        "runs exist)."
    )
    markdown = render(
        header,
        [scenario for scenario, _ in plan],
        rows,
        found,
        columns=suite.columns,
        notes=notes,
    )

    if output is not None:
        path = write_report(suite.name, markdown, output)
        print(f"Report written to {path}.")
        from bench.chart import draw

        chart = draw(
            suite.title, [s for s, _ in plan], rows, output / f"{suite.name}.png"
        )
        if chart is not None:
            print(f"Chart written to {chart}.")
    return markdown
