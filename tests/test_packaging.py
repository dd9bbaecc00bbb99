"""The ``iodine`` namespace holds together however the packages are installed.

iodine-core owns ``iodine/__init__.py`` (which extends ``__path__``); every
other distribution adds a subpackage (``iodine.cli``, ``iodine.http``) from its
own folder or wheel. Two installs must work: the editable ones this test
session runs from, where each package is a separate folder on ``sys.path``, and
wheels installed side by side into one fresh virtual environment, where they
share one ``site-packages/iodine`` folder.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"

# Each distribution with a folder here, and the module it must make importable.
MODULES = {
    "iodine-core": "iodine",
    "iodine-cli": "iodine.cli",
    "iodine-http": "iodine.http",
}
PRESENT = {
    name: module
    for name, module in MODULES.items()
    if (PACKAGES / name / "pyproject.toml").exists()
}

# Run in the fresh environment: import every module and report where each came
# from, the namespace's folders, and whether the HTTP service is found.
PROBE = """
import importlib, json, sys
report = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    report[name] = module.__file__
import iodine
report["__path__"] = list(iodine.__path__)
if "iodine.http" in sys.argv:
    from iodine.core.services import find_client, find_service
    report["service"] = find_service("http").__module__
    report["clients"] = [find_client(s).__module__ for s in ("ws", "wss")]
print(json.dumps(report))
"""


def test_editable_installs_share_the_namespace() -> None:
    import iodine

    for name, module_name in PRESENT.items():
        module = importlib.import_module(module_name)
        source = Path(module.__file__ or "").resolve()
        assert source.is_relative_to(PACKAGES / name / "src"), (name, source)

    # Each package is its own folder on sys.path; iodine-core's extend_path
    # call is what joins them into one package.
    folders = {Path(p).resolve() for p in iodine.__path__}
    for name in PRESENT:
        assert PACKAGES / name / "src" / "iodine" in folders


@pytest.mark.skipif("iodine-http" not in PRESENT, reason="iodine-http is absent")
def test_ws_urls_find_the_client_through_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iodine.core import services
    from iodine.http.websocket import client

    # Nothing registered by hand: only the installed metadata can answer.
    monkeypatch.setattr(services, "_clients", {})
    assert services.find_client("ws") is client.connect
    assert services.find_client("wss") is client.connect


def test_meta_package_declares_its_extras() -> None:
    from importlib import metadata

    from packaging.requirements import Requirement

    requires = [Requirement(text) for text in metadata.requires("iodine") or []]

    def pulled_in(extra: str) -> set[str]:
        return {
            r.name
            for r in requires
            if r.marker is None or r.marker.evaluate({"extra": extra})
        }

    assert pulled_in("") == {"iodine-core"}
    for extra in ("http", "cli", "pubsub", "redis"):
        assert pulled_in(extra) == {"iodine-core", f"iodine-{extra}"}
    assert pulled_in("all") == {
        "iodine-core",
        "iodine-http",
        "iodine-cli",
        "iodine-pubsub",
        "iodine-redis",
    }


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheels_installed_side_by_side(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    # A fresh environment with pip (nox's uv-made ones have none), whose pip
    # then builds every package's wheel.
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    wheels = tmp_path / "wheels"
    folders = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), *map(str, folders)], env)
    built = {_project(wheel): wheel for wheel in wheels.glob("*.whl")}
    assert set(built) == {folder.name for folder in folders}

    # No two wheels may carry the same file, and only iodine-core carries the
    # package's __init__.py.
    _assert_disjoint(built)

    # Our wheels are named by path, so the resolver takes them for iodine-core
    # and friends and fetches only third-party dependencies. The meta package
    # comes with the extras whose packages exist here.
    extras = [
        e for e, p in (("http", "iodine-http"), ("cli", "iodine-cli")) if p in built
    ]
    requirements = [str(w) for name, w in built.items() if name != "iodine"]
    if "iodine" in built:
        requirements.append(f"iodine[{','.join(extras)}] @ {built['iodine'].as_uri()}")
    _run([*pip, "install", *requirements], env)

    probe = _run([python, "-c", PROBE, *PRESENT.values()], env, cwd=tmp_path)
    report = json.loads(probe.stdout)
    site = Path(python).parent.parent
    for module in PRESENT.values():
        assert Path(report[module]).resolve().is_relative_to(site.resolve()), report
    assert len(report["__path__"]) == 1  # one shared site-packages/iodine
    if "iodine-http" in PRESENT:
        assert report["service"].startswith("iodine.http")
        assert report["clients"] == ["iodine.http.websocket.client"] * 2

    if "iodine-cli" in PRESENT:
        version = _run([str(site / "bin" / "iodine"), "--version"], env, cwd=tmp_path)
        assert "iodine-cli 0.1.0" in version.stdout


def _run(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


def _project(wheel: Path) -> str:
    """The distribution name of a wheel file, spelled as its folder is."""
    return wheel.name.split("-")[0].replace("_", "-")


def _assert_disjoint(wheels: dict[str, Path]) -> None:
    owners: dict[str, str] = {}
    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if ".dist-info/" in member:
                    continue
                assert member not in owners, (member, name, owners.get(member))
                owners[member] = name
    assert owners.get("iodine/__init__.py") == "iodine-core"
    if "iodine" in wheels:
        assert "iodine" not in owners.values()  # the meta package has no files
