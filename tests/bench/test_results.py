"""Selecting, summarising and tabulating results."""

from __future__ import annotations

import pytest
from bench.model import (
    Bar,
    Failure,
    Measured,
    Ratio,
    Sample,
    Scenario,
    SelectionError,
    Target,
    ratios,
    select,
    summarize,
)
from bench.processes import cpu_probe
from bench.report import Column, Header, format_value, render, speed_line, table


def _never(*_: object) -> Measured:
    raise AssertionError("no load in these tests")


TARGETS = [
    Target(name, name, command=lambda port: ["true"])
    for name in ("iodine-asgi", "granian-asgi", "uvicorn")
]
SCENARIOS = [
    Scenario("asgi-c100", "c100", "req/s", ("iodine-asgi", "granian-asgi"), _never),
    Scenario("asgi-c1000", "c1000", "req/s", ("iodine-asgi", "uvicorn"), _never),
]


def _sample(run: int, scenario: str, target: str, value: float) -> Sample:
    return Sample(run, scenario, target, Measured(value, server_cpu=0.9))


def test_only_patterns_of_one_kind_add_up() -> None:
    plan = select(SCENARIOS, TARGETS, ["asgi-c100,asgi-c1000"])

    assert [(s.name, names) for s, names in plan] == [
        ("asgi-c100", ["iodine-asgi", "granian-asgi"]),
        ("asgi-c1000", ["iodine-asgi", "uvicorn"]),
    ]


def test_only_targets_and_scenarios_narrow_each_other() -> None:
    plan = select(SCENARIOS, TARGETS, ["uvicorn", "asgi-c1000"])

    assert [(s.name, names) for s, names in plan] == [("asgi-c1000", ["uvicorn"])]


def test_only_accepts_shell_patterns() -> None:
    plan = select(SCENARIOS, TARGETS, ["*-asgi"])

    assert [names for _, names in plan] == [
        ["iodine-asgi", "granian-asgi"],
        ["iodine-asgi"],
    ]


def test_only_pattern_naming_nothing_lists_the_names() -> None:
    with pytest.raises(SelectionError, match="granian-asgi"):
        select(SCENARIOS, TARGETS, ["gunicorn"])


def test_rows_take_the_median_and_spread_of_runs() -> None:
    plan = select(SCENARIOS, TARGETS, ["asgi-c100"])
    samples = [
        _sample(0, "asgi-c100", "iodine-asgi", 100.0),
        _sample(1, "asgi-c100", "iodine-asgi", 300.0),
        _sample(2, "asgi-c100", "iodine-asgi", 120.0),
        _sample(0, "asgi-c100", "granian-asgi", 80.0),
    ]

    rows = summarize(plan, samples, [], {})

    iodine, granian = rows
    assert (iodine.median, iodine.low, iodine.high, iodine.runs) == (120, 100, 300, 3)
    assert iodine.server_cpu == pytest.approx(0.9)
    assert granian.median == 80


def test_noisy_runs_are_left_out_when_quieter_ones_exist() -> None:
    plan = select(SCENARIOS, TARGETS, ["asgi-c100"])
    samples = [
        Sample(0, "asgi-c100", "iodine-asgi", Measured(100.0, others_cpu=0.02)),
        Sample(1, "asgi-c100", "iodine-asgi", Measured(10.0, others_cpu=0.9)),
        Sample(2, "asgi-c100", "iodine-asgi", Measured(110.0, others_cpu=0.1)),
        Sample(0, "asgi-c100", "granian-asgi", Measured(50.0, others_cpu=0.9)),
    ]

    iodine, granian = summarize(plan, samples, [], {})

    assert (iodine.median, iodine.runs) == (105.0, 2)
    assert iodine.note == "1 noisy run(s) left out"
    # With nothing quieter to go by, the noisy run still counts.
    assert (granian.median, granian.note) == (50.0, "")


def test_rows_say_why_a_target_has_no_figure() -> None:
    plan = select(SCENARIOS, TARGETS, [])
    failures = [Failure("asgi-c1000", "uvicorn", "did not start")]

    rows = summarize(plan, [], failures, {"iodine-asgi": "not installed"})

    notes = {(row.scenario, row.target): row.note for row in rows}
    assert notes[("asgi-c100", "iodine-asgi")] == "unavailable: not installed"
    assert notes[("asgi-c1000", "uvicorn")] == "failed 1x: did not start"
    assert all(row.median is None for row in rows)


def test_ratios_compare_medians_and_judge_the_bar() -> None:
    plan = select(SCENARIOS, TARGETS, [])
    samples = [
        _sample(0, "asgi-c100", "iodine-asgi", 130.0),
        _sample(0, "asgi-c100", "granian-asgi", 100.0),
    ]
    rows = summarize(plan, samples, [], {})
    bars = [
        Bar("asgi-c100", "iodine-asgi", "granian-asgi", threshold=1.2),
        Bar("asgi-c100", "iodine-asgi", "granian-asgi", threshold=1.5),
        Bar("asgi-c1000", "iodine-asgi", "uvicorn", threshold=2.3),
    ]

    met, missed, missing = ratios(bars, rows)

    assert met.value == pytest.approx(1.3)
    assert met.verdict == "meets"
    assert missed.verdict == "misses by 13%"
    assert missing.value is None
    assert missing.verdict == "n/a"


def test_an_at_most_bar_is_met_from_below() -> None:
    bar = Bar("idle-rss", "iodine-asgi", "uvicorn", threshold=1.0, at_most=True)

    assert Ratio(bar, 0.4).verdict == "meets"
    assert Ratio(bar, 1.25).verdict == "misses by 25%"
    assert Ratio(Bar("s", "a", "b"), 0.7).verdict == "-"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (123456.7, "123,457"), (42.25, "42.2"), (3.14159, "3.14")],
)
def test_values_are_formatted_for_reading(value: float | None, text: str) -> None:
    assert format_value(value) == text


def test_table_aligns_numbers_right_and_escapes_pipes() -> None:
    text = table(["target", "req/s"], [["a|b", "1,000"], ["c", "-"]])

    lines = text.splitlines()
    assert lines[0] == "| target | req/s |"
    assert lines[1] == "| --- | ---: |"
    assert lines[2] == "| a\\|b | 1,000 |"


def _header(speed: str = "") -> Header:
    return Header(
        title="iodine benchmark: HTTP",
        date="2026-12-03 12:00 UTC",
        python="CPython 3.13.0",
        machine="Linux, 2 CPUs",
        command="python -m bench http --runs 1",
        method="pinned",
        versions={"granian": "2.8.9"},
        speed=speed,
    )


def test_report_has_setup_results_and_ratios() -> None:
    plan = select(SCENARIOS, TARGETS, ["asgi-c100"])
    samples = [
        Sample(
            0,
            "asgi-c100",
            "iodine-asgi",
            Measured(130.0, client_cpu=0.4, extra={"p99_ms": 2.5}),
        ),
        _sample(0, "asgi-c100", "granian-asgi", 100.0),
    ]
    rows = summarize(plan, samples, [], {})
    found = ratios([Bar("asgi-c100", "iodine-asgi", "granian-asgi", 1.2)], rows)
    header = _header()

    text = render(
        header,
        [scenario for scenario, _ in plan],
        rows,
        found,
        columns=[Column("p99_ms", "p99 ms")],
        notes=["a note"],
    )

    assert text.startswith("# iodine benchmark: HTTP\n")
    assert "- Command: `python -m bench http --runs 1`" in text
    assert "- Python: CPython 3.13.0" in text
    assert "granian 2.8.9" in text
    assert "| asgi-c100 | iodine-asgi | 130 | req/s | 130 - 130 | 1 | 2.50 |" in text
    assert (
        "| asgi-c100 | iodine-asgi / granian-asgi | 1.30x | >= 1.2x | meets |" in text
    )
    assert "- a note" in text
    assert "Core speed" not in text  # no probe taken, no line


def test_report_states_the_core_speed_probed_around_the_run() -> None:
    line = speed_line((21.04, 38.96))
    assert "took 21.0 ms before the run and 39.0 ms after it" in line
    assert speed_line((21.0, None)) == ""
    text = render(_header(speed=line), [], [], [])
    assert f"- Core speed: {line}\n" in text


def test_cpu_probe_times_python_on_the_server_core() -> None:
    probe = cpu_probe()
    assert probe is not None
    # A million additions take milliseconds on any machine this runs on,
    # never microseconds (not run) nor minutes.
    assert 0.5 < probe < 5000
    assert cpu_probe(cpu="no-such-cpu") is None
