"""A PNG bar chart per suite: one panel per scenario, one bar per target.

matplotlib is imported here only, so the rest of the bench (and its tests)
works without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench.model import Row, Scenario

# iodine's bars stand out; peers share a muted palette.
IODINE_COLOUR = "#d9480f"
PEER_COLOURS = ("#495057", "#868e96", "#1c7ed6", "#5c940d", "#862e9c", "#a61e4d")


def draw(
    title: str, scenarios: Sequence[Scenario], rows: Sequence[Row], path: Path
) -> Path | None:
    """Draw the medians (with min-max whiskers) into ``path``; None if nothing
    was measured."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none wanted
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [
        (scenario, [row for row in rows if row.scenario == scenario.name])
        for scenario in scenarios
    ]
    panels = [(s, rs) for s, rs in panels if any(r.median is not None for r in rs)]
    if not panels:
        return None

    columns = 1 if len(panels) == 1 else 2
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        lines, columns, figsize=(6.5 * columns, 0.6 + 2.8 * lines), squeeze=False
    )
    figure.suptitle(f"{title}\nmedian of runs; whiskers from slowest to fastest run")
    peers: dict[str, str] = {}
    for index, (scenario, mine) in enumerate(panels):
        ax = axes[index // columns][index % columns]
        names = [row.target for row in mine]
        medians = [row.median or 0.0 for row in mine]
        below = [
            (row.median - row.low) if row.median and row.low is not None else 0.0
            for row in mine
        ]
        above = [
            (row.high - row.median) if row.median and row.high is not None else 0.0
            for row in mine
        ]
        colours = [_colour(name, peers) for name in names]
        positions = range(len(names))
        ax.barh(positions, medians, xerr=[below, above], color=colours, capsize=3)
        ax.set_yticks(list(positions), names)
        ax.invert_yaxis()
        ax.set_title(scenario.name, fontsize=10)
        ax.set_xlabel(scenario.unit)
        # Labels go past the whisker's end, where they cannot overlap it.
        ends = [max(row.high or 0.0, row.median or 0.0) for row in mine]
        top = max(ends, default=0.0)
        for position, row, end in zip(positions, mine, ends, strict=True):
            text = _label(row.median) if row.median is not None else "n/a"
            ax.text(end + top * 0.02, position, text, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3 or 1)
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda x, _: _label(x))
        )
        ax.grid(axis="x", alpha=0.3)
    for index in range(len(panels), lines * columns):
        axes[index // columns][index % columns].axis("off")

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _colour(name: str, peers: dict[str, str]) -> str:
    if name.startswith("iodine"):
        return IODINE_COLOUR
    if name not in peers:
        peers[name] = PEER_COLOURS[len(peers) % len(PEER_COLOURS)]
    return peers[name]
