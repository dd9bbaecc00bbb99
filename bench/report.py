"""Results as a markdown report: the setup, one row per measurement, the ratios.

Rendering is pure (strings in, strings out) so the tests can check it; only
:func:`write_report` touches the disk.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.model import Ratio, Row, Scenario

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Column:
    """An extra per-row figure a suite reports (taken from ``Measured.extra``)."""

    key: str
    header: str
    fmt: str = "{:,.2f}"


@dataclass(frozen=True)
class Header:
    """Where and how the numbers were taken."""

    title: str
    date: str
    python: str
    machine: str
    command: str
    method: str
    versions: dict[str, str]
    revision: str = "unknown"
    speed: str = ""


def make_header(
    title: str, method: str, packages: Iterable[str], speed: str = ""
) -> Header:
    """The report header for a run happening now, in this interpreter."""
    now = datetime.datetime.now(datetime.UTC)
    return Header(
        title=title,
        date=now.strftime("%Y-%m-%d %H:%M UTC"),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        machine=(
            f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
            f"{platform.machine()}"
        ),
        command=shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        method=method,
        versions={name: package_version(name) for name in packages},
        revision=git_revision(),
        speed=speed,
    )


def speed_line(probes: tuple[float | None, float | None]) -> str:
    """The header's account of the server core's speed (``cpu_probe``)."""
    before, after = probes
    if before is None or after is None:
        return ""
    return (
        f"`sum(range(1_000_000))` pinned to CPU 0 took {before:.1f} ms before "
        f"the run and {after:.1f} ms after it (best of 5). A shared host can "
        "slow a core down unseen; compare ratios only between reports whose "
        "probes are close"
    )


def git_revision() -> str:
    """The checked-out commit, ``-dirty`` if the tree has changes: iodine's
    figures belong to the code that produced them."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def format_value(value: float | None) -> str:
    """A throughput or size as a table shows it: grouped digits, sane precision."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def format_percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _cell(text: str) -> str:
    # A pipe inside a cell would split it; error messages may carry one.
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; numeric-looking columns align right."""
    body = [list(map(_cell, row)) for row in rows]
    align = []
    for index, _ in enumerate(headers):
        column = [row[index] for row in body if row[index] not in ("-", "")]
        numeric = bool(column) and all(_looks_numeric(cell) for cell in column)
        align.append("---:" if numeric else "---")
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _looks_numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace("%", "").replace("x", "")
    stripped = stripped.replace("-", "").replace(".", "").replace(" ", "")
    return stripped.isdigit()


def results_table(
    scenarios: Sequence[Scenario], rows: Sequence[Row], columns: Sequence[Column]
) -> str:
    """One line per (scenario, target): median, spread, CPU shares, errors."""
    units = {scenario.name: scenario.unit for scenario in scenarios}
    headers = ["scenario", "target", "median", "unit", "min - max", "runs"]
    headers += [column.header for column in columns]
    headers += ["server CPU", "client CPU", "other CPU", "errors", "note"]
    lines = []
    for row in rows:
        spread = (
            f"{format_value(row.low)} - {format_value(row.high)}"
            if row.low is not None
            else "-"
        )
        extras = [
            column.fmt.format(row.extra[column.key]) if column.key in row.extra else "-"
            for column in columns
        ]
        lines.append(
            [
                row.scenario,
                row.target,
                format_value(row.median),
                units.get(row.scenario, ""),
                spread,
                str(row.runs),
                *extras,
                format_percent(row.server_cpu),
                format_percent(row.client_cpu),
                format_percent(row.others_cpu),
                str(row.errors),
                row.note,
            ]
        )
    return table(headers, lines)


def ratios_table(found: Sequence[Ratio]) -> str:
    """The issue's bars: the ratio of medians (or an absolute median), the
    bar, and whether it is met."""
    lines = []
    for ratio in found:
        bar = ratio.bar
        # "1.30x" for a ratio, "2.10 KiB/conn" for an absolute figure.
        unit = bar.unit if bar.unit == "x" else f" {bar.unit}"
        if bar.threshold is None:
            wanted = "-"
        else:
            wanted = f"{'<=' if bar.at_most else '>='} {bar.threshold:g}{unit}"
        value = "-" if ratio.value is None else f"{ratio.value:.2f}{unit}"
        lines.append([bar.scenario, bar.label, value, wanted, ratio.verdict])
    return table(["scenario", "ratio", "measured", "bar", "verdict"], lines)


def render(
    header: Header,
    scenarios: Sequence[Scenario],
    rows: Sequence[Row],
    found: Sequence[Ratio],
    *,
    columns: Sequence[Column] = (),
    notes: Sequence[str] = (),
) -> str:
    """The whole report as markdown."""
    versions = ", ".join(f"{name} {ver}" for name, ver in header.versions.items())
    parts = [
        f"# {header.title}",
        "",
        f"- Date: {header.date}",
        f"- Python: {header.python}",
        f"- Machine: {header.machine}",
        f"- Command: `{header.command}`",
        f"- Revision: {header.revision}",
        f"- Versions: {versions}",
        f"- Method: {header.method}",
    ]
    if header.speed:
        parts.append(f"- Core speed: {header.speed}")
    parts += [
        "",
        "## Scenarios",
        "",
    ]
    parts += [f"- `{s.name}`: {s.description}" for s in scenarios]
    parts += ["", "## Results", "", results_table(scenarios, rows, columns), ""]
    if found:
        parts += ["## Ratios (of medians)", "", ratios_table(found), ""]
    if notes:
        parts += ["## Notes", ""]
        parts += [f"- {note}" for note in notes]
        parts.append("")
    return "\n".join(parts)


def write_report(name: str, markdown: str, directory: Path = RESULTS_DIR) -> Path:
    """Write ``<name>.md`` under ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    # Write then rename, so an interrupted run never leaves half a report.
    partial = path.with_suffix(".md.tmp")
    partial.write_text(markdown)
    partial.replace(path)
    return path
