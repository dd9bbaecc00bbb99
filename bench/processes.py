"""Servers and load generators as pinned child processes, and what they cost.

Every server runs in its own session (process group) so that stopping it also
stops the workers that gunicorn and granian fork; the group is signalled by the
id of the process this module started, never by name.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: servers run from here so ``bench.apps`` imports."""

SERVER_CPU = "0"
CLIENT_CPU = "1"

# How long a server may take to start listening. Granian and gunicorn fork
# workers and import the app in them; a couple of seconds is normal, 30 means
# something is wrong.
START_TIMEOUT = 30.0

# How long a server gets to exit after SIGTERM before the group is killed.
# uvicorn and gunicorn finish open keep-alive connections gracefully first.
STOP_TIMEOUT = 5.0

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """A server did not start listening, or died; the message says why."""


@dataclass
class Server:
    """A running server process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run on one CPU; taskset execs, so the pid stays the program's."""
    return ["taskset", "-c", cpu, *argv]


def python(*args: str) -> list[str]:
    """This interpreter, so servers run in the same (nox) environment."""
    return [sys.executable, *args]


@contextlib.contextmanager
def running_server(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``argv`` pinned to the server CPU, wait until ``port`` accepts, and
    stop the whole process group on exit, whatever happened meanwhile.

    Raises:
        ServerFailed: it exited or did not listen within ``START_TIMEOUT``.
    """
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(SERVER_CPU, argv),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Server(name, process, port, log_path)
    try:
        _wait_listening(server)
        yield server
    finally:
        stop(process)


def _wait_listening(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"{server.name} exited with code {server.process.returncode}:\n"
                + server.log_tail()
            )
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.05)
    raise ServerFailed(
        f"{server.name} did not listen on port {server.port} within "
        f"{START_TIMEOUT:.0f} s:\n" + server.log_tail()
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process started in its own session, and everything it forked."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while forked workers linger; the group id outlives
    # it as long as any member does.
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# ------------------------------------------------------------- what it costs


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (gunicorn and granian fork workers)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        for task in _list_dir(f"/proc/{current}/task"):
            path = f"/proc/{current}/task/{task}/children"
            with contextlib.suppress(OSError):
                found += [int(child) for child in Path(path).read_text().split()]
    return found


def _list_dir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _ticks(pid: int | str) -> int:
    """User + system CPU ticks of one process (all its threads); 0 if gone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name may hold spaces; the fields after it do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants, all threads."""
    return sum(_ticks(member) for member in process_tree(pid)) / CLOCK_TICKS


def all_ticks() -> dict[int, int]:
    """CPU ticks of every process on the machine but this one."""
    me = os.getpid()
    return {
        int(name): _ticks(name)
        for name in _list_dir("/proc")
        if name.isdigit() and int(name) != me
    }


def others_cpu_seconds(
    before: dict[int, int], after: dict[int, int], ours: Iterable[int]
) -> dict[int, float]:
    """CPU seconds used between two :func:`all_ticks` snapshots by each process
    that is not ``ours`` (the server's tree; a reaped client is in neither)."""
    excluded = set(ours)
    used = {}
    for pid, ticks in after.items():
        delta = ticks - before.get(pid, 0)
        if pid not in excluded and delta > 0:
            used[pid] = delta / CLOCK_TICKS
    return used


def process_name(pid: int) -> str:
    """A short name for a process: its program and first argument, or the
    kernel's name for it."""
    with contextlib.suppress(OSError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [word.decode(errors="replace") for word in argv[:2] if word]
        if words:
            name = " ".join(Path(words[0]).name.split() + words[1:2])
            return name[:40]
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return f"pid {pid}"


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (VmRSS, summed).

    Summing double-counts pages that forked workers share with their parent;
    the idle-connection scenario only compares single-process servers.
    """
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def children_cpu_seconds() -> float:
    """CPU time of every child this process has reaped so far.

    A load generator's share is the difference across its run: servers are
    only reaped when they stop, never while a client runs.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU since boot, from /proc/stat."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        # user nice system idle iowait irq softirq steal: idle and iowait
        # are the only time the CPU had nothing to run.
        values = [int(value) for value in fields[:8]]
        total = sum(values)
        times[name] = (total - values[3] - values[4], total)
    return times


def machine_busy(seconds: float = 0.3) -> float:
    """The busiest CPU's busy share over ``seconds``, while we do nothing."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    shares = [
        (after[cpu][0] - busy) / max(after[cpu][1] - total, 1)
        for cpu, (busy, total) in before.items()
        if cpu in after
    ]
    return max(shares, default=0.0)


# Another benchmark or build on the same machine skews every figure. Before a
# measurement the bench waits (up to QUIET_WAIT seconds) for both CPUs to be
# nearly idle, and reports how busy they were when it went ahead.
QUIET_SHARE = 0.10
QUIET_WAIT = 20.0

# What the speed probe times: pure interpreter work, no I/O, no allocation
# that grows. Its time says how fast the server's core runs Python right now.
_PROBE = (
    "import time\n"
    "best = float('inf')\n"
    "for _ in range(5):\n"
    "    start = time.perf_counter()\n"
    "    sum(range(1_000_000))\n"
    "    best = min(best, time.perf_counter() - start)\n"
    "print(best * 1000)\n"
)


def cpu_probe(cpu: str = SERVER_CPU) -> float | None:
    """Milliseconds a fixed Python loop takes on ``cpu`` (best of 5), or None
    if it could not be run.

    The machines the bench runs on are shared: another guest on the same host
    can halve the speed of a core for minutes without showing up in this
    guest's CPU figures. Servers that run more of their work in Python lose
    more in those minutes than servers whose I/O is compiled, so the ratios
    of two reports are comparable only if their probes are close.
    """
    try:
        done = subprocess.run(
            ["taskset", "-c", cpu, sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return float(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def wait_for_quiet() -> float:
    """Wait, bounded, until no CPU is busier than ``QUIET_SHARE``; return the
    last busy share seen (above the threshold if the wait ran out)."""
    deadline = time.monotonic() + QUIET_WAIT
    busy = machine_busy()
    while busy > QUIET_SHARE and time.monotonic() < deadline:
        time.sleep(0.5)
        busy = machine_busy()
    return busy


@dataclass
class ClientRun:
    """What a load generator printed, and the CPU both sides used meanwhile."""

    stdout: str
    stderr: str
    returncode: int
    elapsed: float
    client_cpu: float
    server_cpu: float
    others_cpu: float
    others_top: tuple[str, ...] = ()


def run_client(
    argv: Sequence[str], server: Server, timeout: float, cpu: str = CLIENT_CPU
) -> ClientRun:
    """Run a load generator pinned to ``cpu`` against ``server``, bounded by
    ``timeout`` seconds; it is killed if it overruns or we are interrupted."""
    client_before = children_cpu_seconds()
    server_before = cpu_seconds(server.pid)
    machine_before = all_ticks()
    started = time.monotonic()
    done = subprocess.run(
        pinned(cpu, argv),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    others = others_cpu_seconds(machine_before, all_ticks(), process_tree(server.pid))
    busiest = sorted(others, key=others.__getitem__, reverse=True)[:3]
    return ClientRun(
        stdout=done.stdout.decode(errors="replace"),
        stderr=done.stderr.decode(errors="replace"),
        returncode=done.returncode,
        elapsed=elapsed,
        client_cpu=(children_cpu_seconds() - client_before) / elapsed,
        server_cpu=(cpu_seconds(server.pid) - server_before) / elapsed,
        others_cpu=sum(others.values()) / elapsed,
        others_top=tuple(
            f"{process_name(pid)} {others[pid] / elapsed:.0%}" for pid in busiest
        ),
    )
