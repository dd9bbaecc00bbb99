"""Autobahn|Testsuite sections 1-10, and a sample of 12-13 with compression
offered, against iodine's WebSocket client:
kosoku's fuzzingserver plays the cases, and the client runs them one by one
as Autobahn's reference clients do (``autobahn_apps.FuzzingClient``),
echoing every message. About ten seconds here; ``nox -s autobahn`` prints
the summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ws.autobahn_server import DEFLATE_SAMPLE, run

RUN_TIMEOUT = 40.0
pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("sections", "count"),
    [
        pytest.param(("1", "2", "3", "4", "5", "6", "7", "10"), 247, id="1-7,10"),
        pytest.param(("9",), 54, id="9", marks=pytest.mark.slow),
    ],
)
def test_client_passes_autobahn_sections_1_to_10(
    sections: tuple[str, ...], count: int, tmp_path: Path
) -> None:
    result = run("client", sections, tmp_path, timeout=RUN_TIMEOUT)

    assert len(result.cases) == count
    assert result.bad() == {}


@pytest.mark.slow
def test_client_with_compression_passes_a_sample_of_sections_12_and_13(
    tmp_path: Path,
) -> None:
    # The fuzzingserver answers the client's offer with a different set of
    # parameters in each 13.x case; the client must take every one.
    result = run(
        "client", DEFLATE_SAMPLE, tmp_path, compression=True, timeout=RUN_TIMEOUT
    )

    assert len(result.cases) == len(DEFLATE_SAMPLE)
    assert result.bad() == {}
