"""Finding the application that APP names: ``module:attr`` or ``file.py[:attr]``.

The rules follow uvicorn's, which most users already know: the current directory
is importable, the attribute may be dotted (``pkg.web:api.app``), and when it is
left out ``app`` is tried, then ``application`` (Django's and many WSGI projects'
name). A file path is imported as a module named after the file, with its folder
importable, as ``python path/to/file.py`` would see its neighbours.

Mistakes in APP itself are :class:`UsageError` (exit 2); an exception raised by
the application's own code while it is imported is a :class:`RuntimeFailure`
(exit 1) that keeps the original exception for ``-V debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from iodine.cli.errors import RuntimeFailure, UsageError

DEFAULT_ATTRIBUTES = ("app", "application")

FORMS = "APP is module:attr or path/to/file.py[:attr]"


@dataclass(frozen=True)
class LoadedApp:
    """The application object and a ``module:attr`` label for log lines."""

    app: object
    label: str


def load_app(spec: str) -> LoadedApp:
    """Import the application that ``spec`` names.

    Raises:
        UsageError: APP is malformed, or names a missing module, file or attribute.
        RuntimeFailure: importing the application's module raised.
    """
    target, attr = split_spec(spec)
    is_file = _is_file(target)
    module = _import_file(Path(target)) if is_file else _import_module(target)
    return _find_attribute(module, target, attr)


def split_spec(spec: str) -> tuple[str, str]:
    """``(target, attr)`` of APP; ``attr`` is ``""`` when APP does not name one."""
    spec = spec.strip()
    if not spec:
        raise UsageError(f"APP is empty; {FORMS}")
    target, colon, attr = spec.rpartition(":")
    if not colon or _is_path_like(attr):
        # No colon, or one that belongs to the path (a Windows drive letter).
        target, attr = spec, ""
    if not target:
        raise UsageError(f"APP {spec!r} names no module or file; {FORMS}")
    if colon and not _is_dotted_name(attr):
        raise UsageError(f"{attr!r} in APP {spec!r} is not an attribute name; {FORMS}")
    if not _is_file(target) and not _is_dotted_name(target):
        raise UsageError(f"{target!r} is neither a module name nor a .py file; {FORMS}")
    return target, attr


def _is_file(target: str) -> bool:
    return target.endswith(".py") or _is_path_like(target)


def _is_path_like(text: str) -> bool:
    return "/" in text or os.sep in text or text.endswith(".py")


def _is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _importable(folder: Path | str) -> None:
    """Put ``folder`` first on ``sys.path``, as ``python`` does for a script."""
    entry = os.fspath(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _import_module(name: str) -> ModuleType:
    # The console script's sys.path starts with its bin/ folder, not the
    # current directory, so `iodine serve app:app` would not find ./app.py.
    _importable(os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_prefix(exc.name, name):
            raise UsageError(
                f"cannot find the module {name!r} (looked in {os.getcwd()} "
                f"and the installed packages); {FORMS}"
            ) from None
        # The module exists but imports something that does not.
        raise _import_failure(name, exc) from None
    except Exception as exc:
        raise _import_failure(name, exc) from None


def _is_prefix(missing: str, name: str) -> bool:
    """Whether the missing module is ``name`` itself or one of its packages."""
    return name == missing or name.startswith(missing + ".")


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise UsageError(f"cannot load {os.fspath(path)!r}: {what}; {FORMS}")
    if path.suffix != ".py":
        raise UsageError(f"cannot load {os.fspath(path)!r}: not a .py file; {FORMS}")

    # The module is named after the file, unless that name is taken by a module
    # already imported (the file might be called logging.py): replacing that
    # entry in sys.modules would break whoever imported the real one.
    name = path.stem if path.stem.isidentifier() else "__iodine_app__"
    if name in sys.modules:
        name = "__iodine_app__"
    _importable(path.resolve().parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py always loads
        raise UsageError(f"cannot load {os.fspath(path)!r} as Python code")
    module = importlib.util.module_from_spec(spec)

    # Registered before it runs, as the import system does, so that code in the
    # file that looks itself up (dataclasses, pickle, typing) finds it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _import_failure(os.fspath(path), exc) from None
    return module


def _import_failure(where: str, exc: Exception) -> RuntimeFailure:
    message = f"importing {where!r} raised {type(exc).__name__}"
    text = str(exc).strip().splitlines()
    if text:
        message += f": {text[0]}"
    return RuntimeFailure(f"{message} (run with -V debug for the traceback)", exc)


def _find_attribute(module: ModuleType, target: str, attr: str) -> LoadedApp:
    names = (attr,) if attr else DEFAULT_ATTRIBUTES
    for name in names:
        try:
            found = _lookup(module, name)
        except AttributeError:
            continue
        if not callable(found):
            raise UsageError(
                f"{target}:{name} is a {type(found).__name__}, not an ASGI or "
                "WSGI application (a callable)"
            )
        return LoadedApp(found, f"{target}:{name}")
    if attr:
        raise UsageError(f"{target!r} has no attribute {attr!r}; {FORMS}")
    raise UsageError(
        f"{target!r} has no attribute 'app' or 'application'; "
        f"name the application in APP, as in {target}:NAME"
    )


def _lookup(obj: object, dotted: str) -> object:
    """Follow a dotted attribute path; raises AttributeError where it breaks."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj
