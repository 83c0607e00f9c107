"""Reading workflow documents: YAML 1.2 (no implicit dates, no ``on``/``no`` booleans) or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from ruamel.yaml.scanner import Scanner

from flowgate.types import JSON

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")
#: DESIGN §7: what one document may cost, counted as if every alias were expanded.
MAX_NODES = 100_000
MAX_YAML_DEPTH = 64


class DocumentError(ValueError):
    """The text is not valid YAML/JSON, or holds values JSON cannot."""


class DocumentTooLarge(DocumentError):
    """Document too large or too deep"""

    def __init__(self) -> None:
        super().__init__(self.__doc__)


class _LimitedScanner(Scanner):
    """Stops at flow level 65 (``[[[…``): each flow collection is a nested node, so the document
    is too deep, and scanning on would cost time quadratic in the depth (ruamel keeps one
    possible simple key per open flow level and rechecks them all for every token)."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            raise DocumentTooLarge
        super().fetch_flow_collection_start(TokenClass, to_push)


class _LimitedComposer(Composer):
    """Refuses, while composing, a document over ``MAX_NODES`` or ``MAX_YAML_DEPTH``.

    Sizes are counted as if every alias were expanded, without expanding it: each anchored node
    remembers its expanded size and height when it is composed, and an alias adds those. An alias
    bomb is therefore refused at the first alias that crosses the limit, after composing only the
    few hundred nodes actually written; a deep document is refused at level 65, before the
    recursion of ``compose_node`` can reach Python's limit.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._nodes = 0  # nodes so far in this document, aliases expanded
        self._open = 0  # collections open around the current node
        self._peak = 0  # deepest nesting reached in the subtree being composed
        self._expanded: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (size, height)

    def compose_document(self) -> Any:
        self._nodes, self._open, self._peak = 0, 0, 0
        self._expanded = {}
        try:
            return super().compose_document()
        finally:
            self._expanded = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            self._add_alias(event.anchor)
            return super().compose_node(parent, index)
        nested = int(isinstance(event, MappingStartEvent | SequenceStartEvent))
        self._add(1, self._open + nested)
        if not nested and event.anchor is None:
            return super().compose_node(parent, index)
        nodes_before, peak_before = self._nodes - 1, self._peak
        self._open += nested
        self._peak = self._open
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open -= nested
        if event.anchor is not None:
            self._expanded[id(node)] = (self._nodes - nodes_before, self._peak - self._open)
        self._peak = max(peak_before, self._peak)
        return node

    def _add_alias(self, anchor: Any) -> None:
        target = self.anchors.get(anchor)
        if target is None:
            return  # the base class raises "found undefined alias"
        expanded = self._expanded.get(id(target))
        if expanded is None:  # the alias sits inside its own anchor: expands forever
            raise DocumentTooLarge
        size, height = expanded
        self._add(size, self._open + height)

    def _add(self, nodes: int, depth: int) -> None:
        self._nodes += nodes
        self._peak = max(self._peak, depth)
        if self._nodes > MAX_NODES or depth > MAX_YAML_DEPTH:
            raise DocumentTooLarge


class _NoDatesConstructor(SafeConstructor):
    """Dates stay the strings they were written as: JSON has no date type."""


_NoDatesConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str
)


def parse_yaml(raw: bytes | str) -> JSON:
    """Raises DocumentTooLarge over MAX_NODES/MAX_YAML_DEPTH, DocumentError if not valid."""
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    yaml.Constructor = _NoDatesConstructor
    yaml.Scanner = _LimitedScanner
    yaml.Composer = _LimitedComposer
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
