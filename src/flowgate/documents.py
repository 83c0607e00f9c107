"""Reading workflow documents: YAML 1.2 (no implicit dates, no ``on``/``no`` booleans) or JSON."""

from __future__ import annotations

from pathlib import Path

import orjson
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError

from flowgate.types import JSON

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")


class DocumentError(ValueError):
    """The text is not valid YAML/JSON, or holds values JSON cannot."""


class _NoDatesConstructor(SafeConstructor):
    """Dates stay the strings they were written as: JSON has no date type."""


_NoDatesConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str
)


def parse_yaml(raw: bytes | str) -> JSON:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    yaml.Constructor = _NoDatesConstructor
    try:
        value = yaml.load(raw)
    except YAMLError as exc:
        raise DocumentError(f"not valid YAML: {exc}") from exc
    try:
        return orjson.loads(orjson.dumps(value))  # type: ignore[no-any-return]
    except TypeError as exc:
        raise DocumentError(f"holds a value JSON cannot: {exc}") from exc


def read_document(path: Path) -> JSON:
    raw = path.read_bytes()
    if path.suffix == ".json":
        try:
            return orjson.loads(raw)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError as exc:
            raise DocumentError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return parse_yaml(raw)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from exc


def document_paths(path: Path) -> list[Path]:
    """The file itself, or every workflow document in a folder, sorted."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in DOCUMENT_SUFFIXES)
    return [path]
