"""Autobahn|Testsuite sections 1-10 against the native echo handler, through
kosoku (the cases' Python runner). About ten seconds here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iodine import Reactor
from tests.ws.conftest import Runner

SECTIONS = [f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10)]  # kosoku has no 8
ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}


def kosoku() -> str | None:
    beside = Path(sys.executable).with_name("kosoku")
    return str(beside) if beside.exists() else shutil.which("kosoku")


class Echo:
    def on_message(self, conn: Any, data: Any) -> None:
        conn.write(data)


@pytest.mark.slow
def test_autobahn_sections_1_to_10_pass(
    reactor: Reactor, runner: Runner, tmp_path: Path
) -> None:
    command = kosoku()
    if command is None:
        pytest.skip("kosoku is not installed (tests/requirements.txt)")
    # Section 9 sends 16 MiB messages, and echoing one queues it whole.
    reactor.settings.max_pending = 64 * 1024 * 1024
    listener = reactor.listen(
        service="ws-test", handler=Echo, port=0, max_message=16 * 1024 * 1024
    )
    runner.start()
    selection = [arg for section in SECTIONS for arg in ("-i", section)]
    arguments = [command, f"127.0.0.1:{listener.port}", "-p", "2", *selection]
    subprocess.run(
        [*arguments, "-o", str(tmp_path)],
        check=False,
        capture_output=True,
        timeout=50,
    )
    (results,) = json.loads((tmp_path / "index.json").read_text()).values()
    bad = {
        case: (result["behavior"], result["behaviorClose"])
        for case, result in results.items()
        if result["behavior"] not in ACCEPTED or result["behaviorClose"] not in ACCEPTED
    }
    assert len(results) > 290
    assert bad == {}
