"""The functions ``python`` steps may call: only those the operator registered.

Three sources, loaded once at start-up: every ``*.py`` file in ``FLOWGATE_FUNCTIONS_DIR``
(``./functions`` by default, when it exists), the modules named in ``FLOWGATE_PYTHON_MODULES``,
and the entry-point group ``flowgate.functions`` (one function per entry point). A module
registers its ``FLOWGATE_FUNCTIONS`` dict if it has one, else every public function defined in
it. Each function is called as ``fn(config, context)``, sync ones in a thread. A module that
cannot be loaded, or a name defined twice, raises :class:`FunctionLoadError`: one line naming
the file or module, so a start-up fails with that line and no traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

Function = Callable[..., Any]

# The package name files of FLOWGATE_FUNCTIONS_DIR are imported under: private, so a file named
# `json.py` or `flowgate.py` shadows nothing.
_DIR_PACKAGE = "_flowgate_functions"


class FunctionLoadError(Exception):
    """A python function module could not be loaded, or two of them define the same name."""


class FunctionRegistry:
    def __init__(self, functions: dict[str, Function] | None = None) -> None:
        self._functions = dict(functions or {})
        self._sources = dict.fromkeys(self._functions, "the registry")

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._functions))

    def get(self, name: str) -> Function:
        return self._functions[name]

    def add(self, name: str, function: Function, *, source: str = "the registry") -> None:
        """Register ``function``; raises FunctionLoadError when ``name`` is taken."""
        if name in self._functions:
            raise FunctionLoadError(
                f"python function {name!r} is defined twice: "
                f"in {self._sources[name]} and in {source}"
            )
        self._functions[name] = function
        self._sources[name] = source


def _module_functions(module: ModuleType) -> Iterable[tuple[str, Function]]:
    explicit = getattr(module, "FLOWGATE_FUNCTIONS", None)
    if isinstance(explicit, dict):
        return explicit.items()
    return [
        (name, value)
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and not name.startswith("_")
        and value.__module__ == module.__name__
    ]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import_file(path: Path) -> ModuleType:
    """Import ``path`` as ``_flowgate_functions.<stem>``, without its folder on sys.path."""
    name = f"{_DIR_PACKAGE}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FunctionLoadError(f"{path}: cannot be imported as a python module")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as a normal import is: dataclasses and typing look it up.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise FunctionLoadError(f"{path}: {_one_line(exc)}") from exc
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise FunctionLoadError(
            f"FLOWGATE_PYTHON_MODULES: cannot import {name!r}: {_one_line(exc)}"
        ) from exc


def directory_files(directory: Path) -> list[Path]:
    """The modules of a functions folder, in name order; raises FunctionLoadError if missing."""
    if not directory.is_dir():
        raise FunctionLoadError(f"FLOWGATE_FUNCTIONS_DIR: {directory} is not a directory")
    return sorted(p for p in directory.glob("*.py") if p.is_file())


def load_functions(modules: str, *, functions_dir: Path | None = None) -> FunctionRegistry:
    """Build the registry from a functions folder, a comma-separated module list and the
    entry-point group; raises FunctionLoadError."""
    registry = FunctionRegistry()
    for path in directory_files(functions_dir) if functions_dir is not None else []:
        for name, function in _module_functions(_import_file(path)):
            registry.add(name, function, source=str(path))
    for module_name in filter(None, (m.strip() for m in modules.split(","))):
        for name, function in _module_functions(_import_module(module_name)):
            registry.add(name, function, source=f"module {module_name}")
    for entry in entry_points(group="flowgate.functions"):
        try:
            function = entry.load()
        except Exception as exc:
            raise FunctionLoadError(
                f"entry point flowgate.functions {entry.name!r} ({entry.value}): {_one_line(exc)}"
            ) from exc
        registry.add(entry.name, function, source=f"entry point {entry.value}")
    return registry
