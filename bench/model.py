"""What a suite is made of: targets, scenarios, samples, and the bars to meet.

Nothing here starts a process, so the parsing and summarising logic is tested
without sockets (tests/bench/).
"""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.processes import Server


@dataclass(frozen=True)
class Target:
    """A server under test.

    Attributes:
        name: Short id used in tables and by ``--only``.
        description: What it is, for the report.
        command: The server's argv, given the port to listen on.
        unavailable: Why it cannot run here, if it cannot (it is then listed,
            not measured).
        env: Extra environment for the server process.
    """

    name: str
    description: str
    command: Callable[[int], list[str]]
    unavailable: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class MeasureError(RuntimeError):
    """A load run went wrong: bad output, a server that died mid-run..."""


@dataclass
class Measured:
    """One measurement as a scenario returns it."""

    value: float
    errors: int = 0
    server_cpu: float | None = None
    client_cpu: float | None = None
    others_cpu: float | None = None
    others_top: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One kind of load, measured against some of the suite's targets.

    Attributes:
        name: Short id used in tables and by ``--only``.
        description: What it measures, for the report.
        unit: The unit of ``Measured.value`` ("msg/s", "req/s", "MiB").
        targets: Names of the targets it runs against.
        measure: ``measure(server, duration)`` runs the load once.
        warm_up: Whether to run a short, discarded load first.
        higher_is_better: False for costs such as memory.
    """

    name: str
    description: str
    unit: str
    targets: tuple[str, ...]
    measure: Callable[[Server, float], Measured]
    warm_up: bool = True
    higher_is_better: bool = True


@dataclass(frozen=True)
class Bar:
    """A figure the issue sets: ``numerator / denominator`` in ``scenario``,
    or, with no denominator, the numerator's own median in ``unit``."""

    scenario: str
    numerator: str
    denominator: str | None
    threshold: float | None = None
    at_most: bool = False  # True when the figure must stay below the threshold
    unit: str = "x"  # "x" for a ratio; the scenario's unit for an absolute bar

    @property
    def label(self) -> str:
        if self.denominator is None:
            return self.numerator
        return f"{self.numerator} / {self.denominator}"

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets whose medians the bar needs."""
        if self.denominator is None:
            return (self.numerator,)
        return (self.numerator, self.denominator)


@dataclass(frozen=True)
class Sample:
    """One measurement of one target in one scenario in one run."""

    run: int
    scenario: str
    target: str
    measured: Measured


@dataclass(frozen=True)
class Failure:
    """A target that could not be measured in a scenario, and why."""

    scenario: str
    target: str
    reason: str


@dataclass(frozen=True)
class Row:
    """The summary of one target in one scenario over all runs."""

    scenario: str
    target: str
    median: float | None
    low: float | None
    high: float | None
    runs: int
    errors: int
    server_cpu: float | None
    client_cpu: float | None
    others_cpu: float | None
    extra: dict[str, float]
    note: str = ""


@dataclass(frozen=True)
class Ratio:
    """A bar and where the measured medians put it."""

    bar: Bar
    value: float | None

    @property
    def verdict(self) -> str:
        bar = self.bar
        if self.value is None:
            return "n/a"
        if bar.threshold is None:
            return "-"
        if bar.at_most:
            if self.value <= bar.threshold:
                return "meets"
            over = self.value / bar.threshold - 1
            return f"misses by {over:.0%}"
        if self.value >= bar.threshold:
            return "meets"
        short = 1 - self.value / bar.threshold
        return f"misses by {short:.0%}"


# ------------------------------------------------------------------ selection


class SelectionError(ValueError):
    """An ``--only`` pattern names nothing in the suite."""


def select(
    scenarios: Sequence[Scenario],
    targets: Sequence[Target],
    patterns: Iterable[str],
) -> list[tuple[Scenario, list[str]]]:
    """The (scenario, target names) pairs that ``--only`` patterns leave.

    A pattern (shell-style, ``*`` allowed) names targets or scenarios. Patterns
    of the same kind add up; the two kinds narrow each other, so
    ``--only uvicorn --only asgi-c100`` is one measurement.

    Raises:
        SelectionError: a pattern matches no target and no scenario.
    """
    target_names = [target.name for target in targets]
    scenario_names = [scenario.name for scenario in scenarios]
    want_targets: set[str] = set()
    want_scenarios: set[str] = set()
    for pattern in patterns:
        for part in filter(None, pattern.split(",")):
            hit_targets = fnmatch.filter(target_names, part)
            hit_scenarios = fnmatch.filter(scenario_names, part)
            if not hit_targets and not hit_scenarios:
                raise SelectionError(
                    f"--only {part!r} matches nothing; targets: "
                    f"{', '.join(target_names)}; scenarios: "
                    f"{', '.join(scenario_names)}"
                )
            want_targets.update(hit_targets)
            want_scenarios.update(hit_scenarios)

    chosen = []
    for scenario in scenarios:
        if want_scenarios and scenario.name not in want_scenarios:
            continue
        names = [
            name
            for name in scenario.targets
            if not want_targets or name in want_targets
        ]
        if names:
            chosen.append((scenario, names))
    return chosen


# ---------------------------------------------------------------- summaries


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# A measurement during which other processes took more than this share of a
# core is left out of the median when the same target has quieter ones: a
# neighbour's benchmark or test run, not the server, set its figure.
NOISY_LIMIT = 0.5


def _quiet(measured: list[Measured]) -> list[Measured]:
    quiet = [m for m in measured if (m.others_cpu or 0.0) <= NOISY_LIMIT]
    return quiet or measured


def summarize(
    plan: Sequence[tuple[Scenario, list[str]]],
    samples: Sequence[Sample],
    failures: Sequence[Failure],
    unavailable: dict[str, str],
) -> list[Row]:
    """One row per planned (scenario, target), in plan order.

    Runs disturbed by other processes (``NOISY_LIMIT``) are left out when
    quieter ones exist, and the row's note says so.
    """
    rows = []
    for scenario, names in plan:
        for name in names:
            taken = [
                sample.measured
                for sample in samples
                if sample.scenario == scenario.name and sample.target == name
            ]
            mine = _quiet(taken)
            values = [measured.value for measured in mine]
            extra_keys = sorted({key for measured in mine for key in measured.extra})
            extra = {
                key: statistics.median([m.extra[key] for m in mine if key in m.extra])
                for key in extra_keys
            }
            note = ""
            if name in unavailable:
                note = f"unavailable: {unavailable[name]}"
            else:
                reasons = [
                    failure.reason
                    for failure in failures
                    if failure.scenario == scenario.name and failure.target == name
                ]
                if reasons:
                    note = f"failed {len(reasons)}x: {reasons[-1]}"
            if len(mine) < len(taken):
                left_out = len(taken) - len(mine)
                note = "; ".join(
                    filter(None, [note, f"{left_out} noisy run(s) left out"])
                )
            rows.append(
                Row(
                    scenario=scenario.name,
                    target=name,
                    median=_median(values),
                    low=min(values) if values else None,
                    high=max(values) if values else None,
                    runs=len(values),
                    errors=sum(measured.errors for measured in mine),
                    server_cpu=_median(
                        [m.server_cpu for m in mine if m.server_cpu is not None]
                    ),
                    client_cpu=_median(
                        [m.client_cpu for m in mine if m.client_cpu is not None]
                    ),
                    others_cpu=_median(
                        [m.others_cpu for m in mine if m.others_cpu is not None]
                    ),
                    extra=extra,
                    note=note,
                )
            )
    return rows


def ratios(bars: Sequence[Bar], rows: Sequence[Row]) -> list[Ratio]:
    """Each bar's ratio of medians (or, for an absolute bar, the median
    itself); None where a side was not measured."""
    medians = {(row.scenario, row.target): row.median for row in rows}
    found = []
    for bar in bars:
        top = medians.get((bar.scenario, bar.numerator))
        if bar.denominator is None:
            found.append(Ratio(bar, top))
            continue
        bottom = medians.get((bar.scenario, bar.denominator))
        value = top / bottom if top is not None and bottom else None
        found.append(Ratio(bar, value))
    return found
