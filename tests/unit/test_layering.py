"""Dependencies point inward: api/ui/cli → service → engine → store → leaves (DESIGN §8)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "flowgate"
LEAVES = {
    "settings", "errors", "ids", "clock", "types", "logs", "documents", "vault", "statuses",
    "jsonvalue",
}  # fmt: skip
LAYERS = ["store", "engine", "service", "api"]
# What each package may import from flowgate (besides itself and the leaves).
ALLOWED: dict[str, set[str]] = {
    "store": set(),
    "engine": {"store"},
    "service": {"engine", "store"},
    "api": {"service", "engine", "store"},
    "ui": {"service", "engine", "store", "api"},
}
#: The one file allowed past its layer: the app mounts the monitor (one import, one call).
EXCEPTIONS: dict[str, set[str]] = {"api/app.py": {"ui"}}


def _flowgate_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "flowgate" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layering_package_imports_only_inward(package: str) -> None:
    offenders = {}
    for path in (SRC / package).rglob("*.py"):
        relative = str(path.relative_to(SRC))
        bad = _flowgate_imports(path) - ALLOWED[package] - LEAVES - {package}
        bad -= EXCEPTIONS.get(relative, set())
        if bad:
            offenders[relative] = sorted(bad)
    assert offenders == {}


def test_layering_leaves_import_no_other_flowgate_module() -> None:
    offenders = {}
    for leaf in LEAVES:
        path = SRC / f"{leaf}.py"
        bad = _flowgate_imports(path) - LEAVES
        if bad:
            offenders[leaf] = sorted(bad)
    assert offenders == {}


def test_layering_client_uses_only_leaves() -> None:
    path = SRC / "client.py"
    assert path.is_file(), f"{path} moved: point this test at it"
    assert _flowgate_imports(path) <= LEAVES
