"""Keeping freed memory in the process, so large transfers do not page-fault.

glibc's malloc serves a block of 128 KiB or more with a fresh ``mmap`` and
unmaps it on ``free``; smaller blocks come from the heap, whose top is given
back to the kernel (``brk``) as soon as more than 128 KiB of it is free. Its
"dynamic threshold" raises both limits a little when it sees large blocks
freed, but not enough for a server: uvloop reads up to 256,000 bytes at a time
into a new ``bytes``, httptools copies each body piece into another, and a
request body of a few hundred KiB is freed again a moment later. Every such
read then costs fresh pages from the kernel, each a page fault and a page
cleared: with 1 MiB uploads that was about a third of the server's CPU time,
where granian (whose Rust allocator keeps its memory) had no faults at all.

:func:`tune_malloc` raises the two limits once at start-up: blocks under
:data:`MMAP_THRESHOLD` come from the heap and are reused, and up to
:data:`TRIM_THRESHOLD` of free heap stays in the process. The cost is that a
process keeps up to that much freed memory instead of returning it; the idle
footprint does not change, since nothing is allocated until it is used.

It is applied only where it means what it says: on glibc, and only when the
user has not tuned malloc themselves through its environment variables.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

from iodine.core.settings import MIB

# Blocks smaller than this come from the heap, so they are reused.
MMAP_THRESHOLD = 1 * MIB

# Free memory at the top of the heap kept before any goes back to the kernel.
TRIM_THRESHOLD = 8 * MIB

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Set by a user who tunes malloc themselves: then iodine leaves it alone.
_USER_TUNING = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)


def on_glibc() -> bool:
    """Whether the C library is glibc, the one whose thresholds these are."""
    try:
        name = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return False
    return bool(name and name.startswith("glibc "))


def user_tuned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether malloc's thresholds were set through the environment."""
    if any(name in environ for name in _USER_TUNING):
        return True
    return "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring).

    Returns True if they were set; False on another C library, or when the
    environment already tunes malloc. Safe to call more than once.
    """
    if not on_glibc() or user_tuned():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Setting either one also turns off glibc's dynamic threshold, which
    # would otherwise move them again.
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
