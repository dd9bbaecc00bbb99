"""The Autobahn|Testsuite cases against iodine, run by kosoku.

kosoku plays the cases under Python 3, either as the client of a server
under test (its default mode) or as the server a client under test connects
to (``-m fuzzingserver``). Every run here starts iodine in a process of its
own, bound to 127.0.0.1, and kosoku in another; both are bounded in time and
stop by themselves. The pytest tests (``test_autobahn*.py``) run sections
1-10 through :func:`run`; ``nox -s autobahn`` runs everything and prints the
summary::

    python -m tests.ws.autobahn_server              # every run, then the summary
    python -m tests.ws.autobahn_server serve native 9001 [--compression]
    python -m tests.ws.autobahn_server client ws://127.0.0.1:9001

The two last ones are the halves of a run, for a look by hand: a server to
point ``kosoku 127.0.0.1:9001 -i '1.*'`` at, and iodine's client for a
``kosoku -m fuzzingserver 127.0.0.1:9001``. Both stop by themselves after
ten minutes. kosoku writes its HTML reports to its ``-o`` folder; the full
run puts each run's reports and logs in a folder of its own under ``-o``
(``iodine-autobahn`` in the temporary directory unless told otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Section 9 sends messages of up to 16 MiB; uvicorn's default limit is the same.
MAX_MESSAGE = 16 * 1024 * 1024

# Echoing a 16 MiB message queues it whole, over core's 8 MiB slow-consumer
# cap; this leaves room for two of them while kosoku reads.
MAX_PENDING = 2 * MAX_MESSAGE + 1024 * 1024

# Sections 1-10 are the protocol (kosoku, like Autobahn, has no section 8);
# 12 and 13 are permessage-deflate.
PROTOCOL = ("1", "2", "3", "4", "5", "6", "7", "9", "10")
COMPRESSION = ("12", "13")

# The first cases of 12.1 and of each 13.x (a different deflate offer each):
# small messages, a few seconds in all; the test suite runs these.
DEFLATE_SAMPLE = (
    *(f"12.1.{n}" for n in range(1, 6)),
    *(f"13.{n}.1" for n in range(1, 8)),
)

ACCEPTED = frozenset(("OK", "NON-STRICT", "INFORMATIONAL"))
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

APPS = {"native": "native_echo", "asgi": "asgi_echo"}

# How long a process may take to print that it is listening.
START_TIMEOUT = 15.0

# A server or client started by hand stops by itself after this long.
LIFETIME = 600.0

DEFAULT_OUTDIR = str(Path(tempfile.gettempdir()) / "iodine-autobahn")


class AutobahnError(RuntimeError):
    """A run did not get as far as kosoku's report."""


@dataclass
class Result:
    """The verdicts of one run, per case, and how long it took."""

    target: str
    cases: dict[str, tuple[str, str]] = field(default_factory=dict)
    seconds: float = 0.0

    def verdict(self, case: str) -> str:
        """The case's verdict in the summary's terms: its behaviour, or
        FAILED when either verdict is a failure (or an ERROR)."""
        behavior, close = self.cases[case]
        if close not in ACCEPTED or behavior not in VERDICTS:
            return "FAILED"
        return behavior

    def counts(self) -> Counter[str]:
        return Counter(self.verdict(case) for case in self.cases)

    def bad(self, passing: frozenset[str] = ACCEPTED) -> dict[str, tuple[str, str]]:
        """The cases whose verdicts are not both in ``passing`` (by default
        UNIMPLEMENTED does not pass)."""
        return {
            case: verdicts
            for case, verdicts in self.cases.items()
            if verdicts[0] not in passing or verdicts[1] not in ACCEPTED
        }


def kosoku() -> str:
    """The kosoku command, beside this Python or on PATH.

    Raises:
        AutobahnError: it is not installed.
    """
    beside = Path(sys.executable).with_name("kosoku")
    if beside.exists():
        return str(beside)
    found = shutil.which("kosoku")
    if found is None:
        raise AutobahnError(
            "kosoku is not installed: pip install -r tests/requirements.txt"
        )
    return found


def selection(sections: tuple[str, ...]) -> list[str]:
    """kosoku's ``-i`` arguments for whole sections ("9") or cases ("9.1.*")."""
    globs = [s if "." in s else f"{s}.*" for s in sections]
    return [arg for glob in globs for arg in ("-i", glob)]


# ------------------------------------------------------------------- processes


def spawn(args: list[str], log: Path, lifetime: float) -> subprocess.Popen[bytes]:
    """Start ``args`` in the repository, its output going to ``log``.

    The child is sent SIGALRM, which ends it, after ``lifetime`` seconds: an
    alarm outlives exec, so even kosoku's fuzzingserver, which would wait for
    a client for ever, stops by itself if this process dies first.
    """
    with log.open("w") as sink:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=partial(signal.alarm, math.ceil(lifetime)),  # noqa: PLW1509  # only sets an alarm
        )


@contextmanager
def running(args: list[str], log: Path, ready: str, lifetime: float) -> Iterator[str]:
    """Start ``args``, wait for ``ready`` (a regex with one group) in its
    output, yield the group, and stop the process after."""
    proc = spawn(args, log, lifetime)
    try:
        pattern = re.compile(ready)
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := pattern.search(log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AutobahnError(f"{args!r} did not start:\n{tail(log)}")
            time.sleep(0.05)
        yield found.group(1)
    finally:
        stop(proc)


def finish(args: list[str], log: Path, timeout: float) -> None:
    """Run ``args`` to its end.

    Raises:
        AutobahnError: it took over ``timeout`` seconds (it is stopped).
    """
    proc = spawn(args, log, timeout + 5)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AutobahnError(f"{args!r} took over {timeout} s:\n{tail(log)}") from None
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (iodine shuts down gracefully on it), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.ws.autobahn_server", *args]


# ------------------------------------------------------------------------ runs


def run(
    target: str,
    sections: tuple[str, ...],
    outdir: Path,
    *,
    compression: bool = False,
    timeout: float = 50.0,
    parallelism: int = 2,
) -> Result:
    """Run ``sections`` against ``target`` and read kosoku's verdicts.

    Args:
        target: ``"native"`` or ``"asgi"`` (a server under test), or
            ``"client"`` (iodine's client against kosoku's fuzzingserver).
        sections: Sections ("9") or case globs ("9.1.*").
        outdir: Where kosoku writes its reports and the processes their logs.
        compression: Serve with ``websocket_compression=True``, or have
            the client offer permessage-deflate.
        timeout: Seconds the whole run may take; every process stops by then.
        parallelism: Cases kosoku plays at once (server targets only).

    Raises:
        AutobahnError: a process did not start, or no report was written.
    """
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "index.json").unlink(missing_ok=True)  # an earlier run's
    started = time.monotonic()
    if target == "client":
        reports = _run_client(sections, outdir, timeout, compression)
    else:
        reports = _run_server(
            target,
            sections,
            outdir,
            compression=compression,
            timeout=timeout,
            parallelism=parallelism,
        )
    result = Result(target, seconds=time.monotonic() - started)
    for case, report in reports.items():
        result.cases[case] = (report["behavior"], report["behaviorClose"])
    return result


def _run_server(
    app: str,
    sections: tuple[str, ...],
    outdir: Path,
    *,
    compression: bool,
    timeout: float,
    parallelism: int,
) -> dict[str, Any]:
    """kosoku's fuzzingclient against an iodine server process."""
    command = [kosoku()]
    serve = ["serve", app, "0", "--lifetime", str(timeout + 10)]
    if compression:
        serve.append("--compression")
    log = outdir / "server.log"
    ready = r"listening on 127\.0\.0\.1:(\d+)"
    with running(python_module(*serve), log, ready, timeout + 15) as port:
        command += [f"127.0.0.1:{port}", "-p", str(parallelism)]
        command += [*selection(sections), "-o", str(outdir)]
        finish(command, outdir / "kosoku.log", timeout)
    return _reports(outdir, log)


def _run_client(
    sections: tuple[str, ...], outdir: Path, timeout: float, compression: bool
) -> dict[str, Any]:
    """iodine's client against kosoku's fuzzingserver, both as processes."""
    command = [kosoku(), "-m", "fuzzingserver", "127.0.0.1:0"]
    command += [*selection(sections), "-o", str(outdir)]
    log = outdir / "kosoku.log"
    ready = r"listening on (ws://127\.0\.0\.1:\d+)"
    with running(command, log, ready, timeout + 15) as url:
        client = python_module("client", url, "--lifetime", str(timeout))
        if compression:
            client.append("--compression")
        finish(client, outdir / "client.log", timeout + 5)

        # The fuzzingserver writes its reports once updateReports closed,
        # then exits.
        deadline = time.monotonic() + 10
        while "wrote reports" not in tail(log) and time.monotonic() < deadline:
            time.sleep(0.05)
    return _reports(outdir, outdir / "client.log")


def _reports(outdir: Path, log: Path) -> dict[str, Any]:
    index = outdir / "index.json"
    if not index.exists():
        raise AutobahnError(f"kosoku wrote no report; {log.name}:\n{tail(log)}")
    agents = json.loads(index.read_text())
    reports: dict[str, Any] = {}
    for cases in agents.values():
        reports.update(cases)
    return reports


# ---------------------------------------------------------------- the halves


def serve(app_name: str, port: int, compression: bool, lifetime: float) -> None:
    """Serve an echo app on 127.0.0.1 until SIGTERM or ``lifetime`` s."""
    import iodine
    from tests.ws import autobahn_apps

    app = getattr(autobahn_apps, APPS[app_name])
    iodine.settings.max_pending = MAX_PENDING
    iodine.settings.shutdown_timeout = 2
    listener = iodine.listen(
        service="http",
        handler=app,
        address="127.0.0.1",
        port=port,
        max_message=MAX_MESSAGE,
        websocket_compression=compression,
    )
    print(f"listening on 127.0.0.1:{listener.port}", flush=True)
    if lifetime:
        iodine.run_after(lifetime * 1000, iodine.stop)
    iodine.run()


def client(url: str, agent: str, lifetime: float, compression: bool = False) -> int:
    """Run every case of the fuzzingserver at ``url``; 1 if a step failed.

    With ``compression`` the client offers permessage-deflate.
    """
    import iodine
    from tests.ws import autobahn_apps

    iodine.settings.max_pending = MAX_PENDING
    iodine.settings.shutdown_timeout = 2
    run = autobahn_apps.FuzzingClient(
        url.rstrip("/"), agent, MAX_MESSAGE, iodine.stop, compression
    )
    iodine.defer(run.start)
    if lifetime:
        iodine.run_after(lifetime * 1000, iodine.stop)
    iodine.run()
    print(f"Ran {run.ran} of {run.count} cases.", flush=True)
    for error in run.errors:
        print(f"Error: {error}", flush=True)
    return 0 if run.finished and not run.errors else 1


# ------------------------------------------------------------------ full run


@dataclass(frozen=True)
class Plan:
    """One run of ``nox -s autobahn``."""

    label: str
    target: str
    sections: tuple[str, ...]
    compression: bool = False
    # Seconds the run may take; 12-13 take about six minutes per server
    # target on two shared cores, nearly all of it in permessage-deflate.
    timeout: float = 300.0
    # Verdicts that count as passing for this run.
    passing: frozenset[str] = ACCEPTED


FULL_RUN = (
    Plan("server native", "native", PROTOCOL),
    Plan("server asgi", "asgi", PROTOCOL),
    Plan("server native deflate", "native", COMPRESSION, True, 1200.0),
    Plan("server asgi deflate", "asgi", COMPRESSION, True, 1200.0),
    Plan("client", "client", PROTOCOL),
    Plan("client deflate", "client", COMPRESSION, True, 1200.0),
)


def summary(results: list[tuple[Plan, Result]]) -> str:
    """The counts per verdict per run, then the cases that did not pass."""
    width = max(len(plan.label) for plan, _ in results)
    header = f"{'run':<{width}}  {'cases':>5}  " + "  ".join(VERDICTS) + "  seconds"
    lines = [header, "-" * len(header)]
    for plan, result in results:
        counts = result.counts()
        cells = "  ".join(f"{counts[v]:>{len(v)}}" for v in VERDICTS)
        row = f"{plan.label:<{width}}  {len(result.cases):>5}  {cells}"
        lines.append(f"{row}  {result.seconds:7.1f}")
    for plan, result in results:
        for case, (behavior, close) in sorted(
            result.bad(plan.passing).items(), key=lambda item: case_key(item[0])
        ):
            lines.append(f"{plan.label}: {case} behavior={behavior} close={close}")
    return "\n".join(lines)


def case_key(case: str) -> list[int]:
    """Case ids in numeric order (9.10 after 9.9)."""
    return [int(part) for part in case.split(".")]


def full_run(outdir: Path, only: list[str]) -> int:
    """Every plan (or those whose label has a word of ``only``); 1 if any
    case did not pass or a run did not finish."""
    results: list[tuple[Plan, Result]] = []
    failed = False
    for plan in FULL_RUN:
        if only and not any(word in plan.label for word in only):
            continue
        print(f"Running {plan.label}: sections {', '.join(plan.sections)}.")
        folder = outdir / plan.label.replace(" ", "-")
        shutil.rmtree(folder, ignore_errors=True)
        try:
            result = run(
                plan.target,
                plan.sections,
                folder,
                compression=plan.compression,
                timeout=plan.timeout,
            )
        except AutobahnError as exc:
            print(f"{plan.label} did not finish: {exc}")
            failed = True
            continue
        print(f"Finished {plan.label} in {result.seconds:.1f} s.", flush=True)
        results.append((plan, result))
        failed = failed or bool(result.bad(plan.passing))
    print(summary(results) if results else "No run finished.")
    print(f"Reports in {outdir}/.")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] not in ("all", "serve", "client"):
        args = ["all", *args]
    parser = argparse.ArgumentParser(prog="python -m tests.ws.autobahn_server")
    commands = parser.add_subparsers(dest="command", required=True)
    every = commands.add_parser("all", help="every run, then the summary")
    every.add_argument(
        "--only", action="append", default=[], help="runs whose label has WORD"
    )
    every.add_argument("-o", "--outdir", default=DEFAULT_OUTDIR)
    one = commands.add_parser("serve", help="one echo server on 127.0.0.1")
    one.add_argument("app", choices=sorted(APPS))
    one.add_argument("port", type=int, nargs="?", default=9001)
    one.add_argument("--compression", action="store_true")
    one.add_argument("--lifetime", type=float, default=LIFETIME, help="seconds")
    side = commands.add_parser("client", help="iodine's client for a fuzzingserver")
    side.add_argument("url", nargs="?", default="ws://127.0.0.1:9001")
    side.add_argument("--agent", default="iodine")
    side.add_argument("--compression", action="store_true")
    side.add_argument("--lifetime", type=float, default=LIFETIME, help="seconds")
    options = parser.parse_args(args)

    if options.command == "serve":
        serve(options.app, options.port, options.compression, options.lifetime)
        return 0
    if options.command == "client":
        return client(options.url, options.agent, options.lifetime, options.compression)
    return full_run(Path(options.outdir).resolve(), options.only)


if __name__ == "__main__":
    sys.exit(main())
