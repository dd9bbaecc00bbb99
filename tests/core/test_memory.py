"""malloc tuning: freed memory is reused, not faulted in again.

mallopt changes the whole process, so each check runs in a Python of its own
and counts that process's minor page faults while it allocates and frees the
kind of blocks a large upload does (uvloop's reads are 256,000 bytes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from iodine.core import memory

pytestmark = pytest.mark.skipif(
    not memory.on_glibc(), reason="malloc tuning applies to glibc only"
)

# Prints the minor page faults of 100 rounds of four 256,000-byte blocks
# allocated, written and freed, after ``SETUP`` has run.
CHURN = """
import resource
import iodine
from iodine.core import memory

{setup}

def churn(rounds):
    for _ in range(rounds):
        blocks = [b"x" * 256_000 for _ in range(4)]
        del blocks

churn(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(100)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# Four blocks of 63 pages each, every round, when nothing is kept.
UNTUNED_AT_LEAST = 100 * 4 * 50
TUNED_AT_MOST = 100


def faults(setup: str, env: dict[str, str] | None = None) -> int:
    result = subprocess.run(
        [sys.executable, "-c", CHURN.format(setup=textwrap.dedent(setup))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return int(result.stdout.split()[-1])


def test_untuned_malloc_faults_on_every_large_block() -> None:
    # The baseline the other tests stand on: without tuning, this pattern
    # costs fresh pages each round (if it did not, they would prove nothing).
    assert faults("") >= UNTUNED_AT_LEAST


def test_tune_malloc_makes_freed_blocks_reusable() -> None:
    assert faults("assert memory.tune_malloc()") <= TUNED_AT_MOST


def test_the_reactor_tunes_malloc_when_it_starts() -> None:
    setup = """
        iodine.on_state("on_start", iodine.stop)
        iodine.run()
    """
    assert faults(setup) <= TUNED_AT_MOST


def test_the_setting_turns_it_off() -> None:
    setup = """
        iodine.settings.tune_malloc = False
        iodine.on_state("on_start", iodine.stop)
        iodine.run()
    """
    assert faults(setup) >= UNTUNED_AT_LEAST


def test_malloc_tuned_by_the_user_is_left_alone() -> None:
    env = {**os.environ, "MALLOC_TOP_PAD_": "0"}
    assert faults("assert not memory.tune_malloc()", env=env) >= UNTUNED_AT_LEAST


@pytest.mark.parametrize(
    ("environ", "tuned"),
    [
        ({}, False),
        ({"MALLOC_TRIM_THRESHOLD_": "1"}, True),
        ({"MALLOC_MMAP_THRESHOLD_": "1"}, True),
        ({"MALLOC_TOP_PAD_": "1"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, True),
        ({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=1"}, False),
        ({"MALLOC_ARENA_MAX": "2"}, False),
    ],
)
def test_user_tuning_is_recognised(environ: dict[str, str], tuned: bool) -> None:
    assert memory.user_tuned(environ) is tuned
