"""The functions ``python`` steps may call: only those the operator registered.

A module named in ``FLOWGATE_PYTHON_MODULES`` registers its ``FLOWGATE_FUNCTIONS`` dict if it has
one, else every public function defined in it, under its ``__name__``. The entry-point group
``flowgate.functions`` adds one function per entry point. Each function is called as
``fn(config, context)``, sync ones in a thread.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

Function = Callable[..., Any]


class FunctionRegistry:
    def __init__(self, functions: dict[str, Function] | None = None) -> None:
        self._functions = dict(functions or {})

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._functions))

    def get(self, name: str) -> Function:
        return self._functions[name]

    def add(self, name: str, function: Function) -> None:
        if name in self._functions:
            raise ValueError(f"python function {name!r} is registered twice")
        self._functions[name] = function


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


def load_functions(modules: str) -> FunctionRegistry:
    """Build the registry from a comma-separated module list and the entry-point group."""
    registry = FunctionRegistry()
    for module_name in filter(None, (m.strip() for m in modules.split(","))):
        for name, function in _module_functions(importlib.import_module(module_name)):
            registry.add(name, function)
    for entry in entry_points(group="flowgate.functions"):
        registry.add(entry.name, entry.load())
    return registry
