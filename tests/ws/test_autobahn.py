"""Autobahn|Testsuite sections 1-10 against the real HTTP server, played by
kosoku (see ``autobahn_server``): a native handler reached through
``iodine.upgrade``, and an ASGI application on the ``websocket`` scope.

Each run takes about five seconds here. Sections 12-13 (permessage-deflate)
take minutes, so only a sample of them runs here; ``nox -s autobahn`` runs
them all and prints the summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ws.autobahn_server import DEFLATE_SAMPLE, run

# The runs stop themselves after RUN_TIMEOUT; pytest-timeout is the backstop.
RUN_TIMEOUT = 40.0
pytestmark = pytest.mark.timeout(60)

SECTIONS_1_TO_10 = [
    pytest.param(("1", "2", "3", "4", "5", "6", "7", "10"), 247, id="1-7,10"),
    # 16 MiB messages, and thousands of small ones: the heavy section.
    pytest.param(("9",), 54, id="9", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("app", ["native", "asgi"])
@pytest.mark.parametrize(("sections", "count"), SECTIONS_1_TO_10)
def test_server_passes_autobahn_sections_1_to_10(
    app: str, sections: tuple[str, ...], count: int, tmp_path: Path
) -> None:
    result = run(app, sections, tmp_path, timeout=RUN_TIMEOUT)

    assert len(result.cases) == count
    assert result.bad() == {}


@pytest.mark.slow
@pytest.mark.parametrize("app", ["native", "asgi"])
def test_server_with_compression_passes_a_sample_of_sections_12_and_13(
    app: str, tmp_path: Path
) -> None:
    result = run(app, DEFLATE_SAMPLE, tmp_path, compression=True, timeout=RUN_TIMEOUT)

    assert len(result.cases) == len(DEFLATE_SAMPLE)
    assert result.bad() == {}
