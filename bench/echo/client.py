"""The C tools of the echo suite (the load generator and the ceiling server):
built on first use into a cache, never into the repository; and the client's
result line, parsed."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.model import MeasureError

HERE = Path(__file__).parent


@dataclass(frozen=True)
class EchoResult:
    """What one client run reports."""

    messages: int
    seconds: float
    errors: int
    connections: int

    @property
    def rate(self) -> float:
        """Round trips per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


_LINE = re.compile(
    r"messages=(?P<messages>\d+) seconds=(?P<seconds>[\d.]+) "
    r"errors=(?P<errors>\d+) connections=(?P<connections>\d+)"
)


def parse_output(text: str) -> EchoResult:
    """Read the client's one result line.

    Raises:
        MeasureError: no result line (the client failed before measuring).
    """
    match = _LINE.search(text)
    if match is None:
        raise MeasureError(f"no result line in echo client output: {text!r}")
    return EchoResult(
        messages=int(match["messages"]),
        seconds=float(match["seconds"]),
        errors=int(match["errors"]),
        connections=int(match["connections"]),
    )


def cache_dir() -> Path:
    """Where built tools live: the user's cache, never the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iodine-bench"


def build(tool: str = "client", directory: Path = HERE) -> Path:
    """Compile ``<directory>/<tool>.c`` (``bench/echo/`` unless another suite
    asks) unless a build of this exact source exists, and return the binary.

    The binary is named by the suite's folder and the source's hash, so
    editing the source rebuilds it and nothing stale is ever run.

    Raises:
        MeasureError: no C compiler, or the source does not compile.
    """
    source = directory / f"{tool}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = cache_dir() / f"{directory.name}_{tool}-{digest}"
    if binary.exists():
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise MeasureError(f"{source.name} needs gcc (apt-get install gcc)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".tmp")
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(partial), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise MeasureError(f"compiling {source.name} failed:\n{done.stderr}")
    partial.replace(binary)
    return binary


def build_all() -> None:
    """Build every tool up front, so a compile error stops the suite at once."""
    build("client")
    build("server")
