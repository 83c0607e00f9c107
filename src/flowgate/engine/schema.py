"""Input validation against a workflow's ``inputSchema`` (JSON Schema 2020-12).

Validation runs on jsonschema-rs with the linear-time ``regex`` engine: ``pattern`` and
``patternProperties`` cannot backtrack, so no input can stall the event loop (DESIGN §7). A
pattern that engine cannot compile (lookaround, backreferences) is a write-time schema problem.
Formats are not asserted (2020-12 treats ``format`` as an annotation by default), so
``format: regex`` is never evaluated. Remote ``$ref``s are never fetched.

Every failure is reported with the path of the offending value; a missing required property is
reported at its own path with the message ``"Required"``, as the seed shows. Messages keep the
wording of the Python ``jsonschema`` library that flowgate used before (docs/decisions.md).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from flowgate.types import JSON

_MAX_MESSAGE = 200
#: At most this many failures are reported (DESIGN's "one per failure", capped deliberately).
MAX_PROBLEMS = 20
# jsonschema-rs 0.60 builds every error eagerly, each with a Python copy of its instance, at
# about 130 ns per node: 1,000 failing keywords on a 60,000-item list took 8 s. When the schema's
# size times the input's nested size (each node counted once per enclosing level) exceeds this,
# only the first failure is built (``validate``), which costs one copy (docs/decisions.md).
_MAX_ERROR_WORK = 500_000
# jsonschema-rs refuses schemas nested deeper than about 254 levels and its meta-validation
# overflows the native stack near 10,000; stay well below both.
_MAX_SCHEMA_DEPTH = 128
# Each distinct regex compiles eagerly, holding the GIL throughout (a worker thread does not keep
# the event loop free), at about 4 ms per MiB of compiled program. The regex crate's default
# 10 MiB let one large Unicode repetition cost ~50 ms and 64 of them ~3.4 s; 512 KiB each bounds
# the worst schema within these caps to ~0.2 s (docs/decisions.md).
_MAX_REGEXES = 64
_MAX_REGEX_BYTES = 512 * 1024
_META_SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})
_SCHEMA_MAPS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    path: list[str | int]
    message: str


def check_schema(schema: JSON) -> list[SchemaProblem]:
    """Problems with an ``inputSchema`` itself, paths inside the schema."""
    if not isinstance(schema, dict | bool):
        return [SchemaProblem([], "must be a JSON Schema object")]
    if _depth(schema) > _MAX_SCHEMA_DEPTH:
        return [SchemaProblem([], f"is nested more than {_MAX_SCHEMA_DEPTH} levels deep")]
    if len(_regexes(schema)) > _MAX_REGEXES:
        return [SchemaProblem([], f"has more than {_MAX_REGEXES} distinct regexes")]
    try:
        meta = _compile({"$ref": _META_SCHEMA_URI})
        errors = list(meta.iter_errors(schema))
    except ValueError as exc:
        return [SchemaProblem([], _short(f"unusable schema: {exc}"))]
    problems = [
        SchemaProblem(list(e.instance_path), _short(_message(e, None)))
        for e in sorted(errors, key=lambda e: [str(part) for part in e.instance_path])
    ]
    if not problems:
        _validator, problem = _try_compile(schema)
        problems += [problem] if problem else []
    return problems


class InputValidator:
    """A validator compiled once per workflow version; never raises.

    A stored schema this engine cannot compile (written before patterns were checked at write
    time) fails every validation with that problem instead of crashing the run's request.
    """

    def __init__(self, schema: JSON | None) -> None:
        self._schema = schema
        self._validator: jsonschema_rs.Validator | None = None
        self._unusable: SchemaProblem | None = None
        self._schema_size = _nested_size(schema, _MAX_ERROR_WORK)
        if schema is not None:
            self._validator, problem = _try_compile(schema)
            if problem is not None:
                where = "/".join(map(str, problem.path))
                message = f"inputSchema cannot be used: {where}: {problem.message}"
                self._unusable = SchemaProblem([], _short(message))

    def validate(self, value: JSON) -> tuple[JSON, list[SchemaProblem]]:
        """The input with ``default``s applied, and one problem per failure (at most
        MAX_PROBLEMS, or only the first when listing them all would cost too much)."""
        if self._unusable is not None:
            return value, [self._unusable]
        if self._validator is None:
            return value, []
        with_defaults = _apply_defaults(self._schema, value)
        try:
            if self._validator.is_valid(with_defaults):
                return with_defaults, []
            errors = self._errors(self._validator, with_defaults)
        except ValueError as exc:  # not JSON: a non-str key, a lone surrogate
            return with_defaults, [SchemaProblem([], _short(f"is not valid JSON: {exc}"))]
        keyed = [(_problem(e, self._schema), _order(e, self._schema)) for e in errors]
        keyed.sort(key=lambda pair: ([str(part) for part in pair[0].path], pair[1]))
        return with_defaults, [problem for problem, _ in keyed]

    def _errors(
        self, validator: jsonschema_rs.Validator, value: JSON
    ) -> list[jsonschema_rs.ValidationError]:
        budget = _MAX_ERROR_WORK // max(self._schema_size, 1)
        if _nested_size(value, budget) > budget:
            try:
                validator.validate(value)
            except jsonschema_rs.ValidationError as first:
                return [first]
            return []
        return list(itertools.islice(validator.iter_errors(value), MAX_PROBLEMS))


def _compile(
    schema: dict[str, JSON] | bool, *, regex_bytes: int | None = _MAX_REGEX_BYTES
) -> jsonschema_rs.Validator:
    options = jsonschema_rs.RegexOptions(size_limit=regex_bytes)
    return jsonschema_rs.Draft202012Validator(schema, pattern_options=options, offline=True)


def _try_compile(schema: JSON) -> tuple[jsonschema_rs.Validator | None, SchemaProblem | None]:
    if not isinstance(schema, dict | bool) or _depth(schema) > _MAX_SCHEMA_DEPTH:
        return None, SchemaProblem([], "unusable schema: not an object or nested too deeply")
    try:
        return _compile(schema), None
    except jsonschema_rs.ValidationError as exc:
        path = list(exc.instance_path)
        if exc.kind.name == "format" and isinstance(exc.instance, str):  # only regexes compile
            return None, SchemaProblem(path, _short(_regex_message(exc.instance)))
        return None, SchemaProblem(path, _short(f"unusable schema: {exc.message}"))
    except ValueError as exc:  # e.g. "Recursion limit reached"
        return None, SchemaProblem([], _short(f"unusable schema: {exc}"))


def _regex_message(pattern: str) -> str:
    if _too_big(pattern):
        return (
            f"{pattern!r} compiles to more than {_MAX_REGEX_BYTES // 1024} KiB; "
            "use + or * with minLength/maxLength instead of large repetition counts"
        )
    return (
        f"{pattern!r} is not a regular expression the linear-time engine accepts "
        "(lookaround and backreferences are not supported)"
    )


def _too_big(pattern: str) -> bool:
    """Whether the pattern compiles without the size bound: one ~50 ms compile at worst, only
    on the way to refusing the schema."""
    try:
        _compile({"pattern": pattern}, regex_bytes=None)
    except jsonschema_rs.ValidationError:
        return False
    return True


def _problem(error: jsonschema_rs.ValidationError, schema: JSON) -> SchemaProblem:
    path: list[str | int] = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        keyword = error.schema_path[-1:]
        if keyword != ["dependentRequired"]:
            return SchemaProblem([*path, kind.property], "Required")
    return SchemaProblem(path, _short(_message(error, schema)))


def _order(error: jsonschema_rs.ValidationError, schema: JSON) -> list[int]:
    """Where the failing keyword sits in the schema: ties keep the schema's keyword order."""
    return _walk(schema, list(error.schema_path))[0]


def _at(schema: JSON, path: list[str | int]) -> JSON:
    return _walk(schema, path)[1]


def _walk(schema: JSON, path: list[str | int]) -> tuple[list[int], JSON]:
    """Positions along ``path`` inside ``schema``, and the value there (None if unreachable)."""
    positions, node = [], schema
    for part in path:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            positions.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            positions.append(part)
            node = node[part]
        else:
            return positions, None
    return positions, node


def _message(error: jsonschema_rs.ValidationError, schema: JSON) -> str:
    """The ``jsonschema`` library's wording where it is known, else jsonschema-rs's own."""
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.PropertyNames):
        return _message(kind.error, schema)
    render = _RENDER.get(type(kind).__name__)
    value = error.instance
    if render is None:
        return error.message
    rendered = render(value, kind.as_dict(), _at(schema, list(error.schema_path)))
    return error.message if rendered is None else rendered


def _sized(short: str, empty: str, edge: int) -> Callable[[Any, dict[str, Any], JSON], str]:
    return lambda v, k, _: f"{_brief(v)} {empty if k['limit'] == edge else short}"


def _type(value: Any, kind: dict[str, Any], keyword: JSON) -> str:
    types = keyword if isinstance(keyword, list) else [keyword] if keyword else kind["types"]
    return f"{_brief(value)} is not of type {', '.join(map(repr, types))}"


def _listed(keyword: JSON, fallback: list[JSON]) -> list[JSON]:
    return keyword if isinstance(keyword, list) else fallback


def _dependent(value: Any, kind: dict[str, Any], keyword: JSON) -> str | None:
    missing = kind["property"]
    if not isinstance(keyword, dict) or not isinstance(value, dict):
        return None
    for name, needed in keyword.items():
        if name in value and isinstance(needed, list) and missing in needed:
            return f"{_brief(missing)} is a dependency of {_brief(name)}"
    return None


_Render = Callable[[Any, dict[str, Any], JSON], str | None]
_RENDER: dict[str, _Render] = {
    "Type": _type,
    "Required": _dependent,
    "Enum": lambda v, k, s: f"{_brief(v)} is not one of {_brief(_listed(s, k['options']))}",
    "Constant": lambda v, k, _: f"{_brief(k['expected_value'])} was expected",
    "Pattern": lambda v, k, _: f"{_brief(v)} does not match {_brief(k['pattern'])}",
    "Minimum": lambda v, k, _: f"{_brief(v)} is less than the minimum of {_brief(k['limit'])}",
    "Maximum": lambda v, k, _: f"{_brief(v)} is greater than the maximum of {_brief(k['limit'])}",
    "ExclusiveMinimum": lambda v, k, _: (
        f"{_brief(v)} is less than or equal to the minimum of {_brief(k['limit'])}"
    ),
    "ExclusiveMaximum": lambda v, k, _: (
        f"{_brief(v)} is greater than or equal to the maximum of {_brief(k['limit'])}"
    ),
    "MultipleOf": lambda v, k, _: f"{_brief(v)} is not a multiple of {k['multiple_of']}",
    "MinLength": _sized("is too short", "should be non-empty", 1),
    "MaxLength": _sized("is too long", "is expected to be empty", 0),
    "MinItems": _sized("is too short", "should be non-empty", 1),
    "MaxItems": _sized("is too long", "is expected to be empty", 0),
    "MinProperties": _sized("does not have enough properties", "should be non-empty", 1),
    "MaxProperties": _sized("has too many properties", "is expected to be empty", 0),
    "UniqueItems": lambda v, k, _: f"{_brief(v)} has non-unique elements",
    "AnyOf": lambda v, k, _: f"{_brief(v)} is not valid under any of the given schemas",
    "OneOfNotValid": lambda v, k, _: f"{_brief(v)} is not valid under any of the given schemas",
    "Not": lambda v, k, _: f"{_brief(v)} should not be valid under {_brief(k['schema'])}",
    "Contains": lambda v, k, _: f"{_brief(v)} does not contain items matching the given schema",
    "FalseSchema": lambda v, k, _: f"False schema does not allow {_brief(v)}",
}


def _apply_defaults(schema: JSON | None, value: JSON) -> JSON:
    """Fill in ``properties.*.default`` for absent keys, recursing into present objects.

    Copies only the objects it changes, so the caller's value is never mutated and deep inputs
    cost no deep copy.
    """
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return value
    result = value
    for name, subschema in properties.items():
        if not isinstance(subschema, dict):
            continue
        if name not in value and "default" in subschema:
            new = copy.deepcopy(subschema["default"])
        elif name in value:
            new = _apply_defaults(subschema, value[name])
            if new is value[name]:
                continue
        else:
            continue
        result = dict(result) if result is value else result
        result[name] = new
    return result


def _depth(document: JSON) -> int:
    """Nesting depth of a JSON document, without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > _MAX_SCHEMA_DEPTH:
            break
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _regexes(schema: JSON) -> set[str]:
    """Distinct ``pattern`` values and ``patternProperties`` keys, skipping data keywords."""
    found: set[str] = set()
    stack: list[JSON] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, child in node.items():
            if key == "pattern" and isinstance(child, str):
                found.add(child)
            elif key in _SCHEMA_MAPS and isinstance(child, dict):
                found.update(child if key == "patternProperties" else ())
                stack.extend(child.values())
            elif key not in _DATA_KEYWORDS:
                stack.append(child)
    return found


def _nested_size(document: JSON | None, limit: int) -> int:
    """Nodes of ``document``, each counted once per level above it: the total size of every
    sub-value an error could carry. Stops counting past ``limit``."""
    total, stack = 0, [(document, 1)]
    while stack and total <= limit:
        node, depth = stack.pop()
        total += depth
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return total


def _brief(value: object) -> str:
    """``repr(value)`` as far as a message can show it: exact up to _MAX_MESSAGE characters,
    then cut, so a huge instance is never rendered whole. Iterative: values may be 512 deep."""
    pieces: list[str] = []
    size = 0
    stack: list[Iterator[object]] = [iter((value,))]
    while stack and size <= _MAX_MESSAGE:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        if isinstance(item, _Text):
            piece = item.text
        elif isinstance(item, dict) and item:
            stack.append(_dict_parts(item))
            continue
        elif isinstance(item, list) and item:
            stack.append(_list_parts(item))
            continue
        else:
            piece = repr(item)
        pieces.append(piece)
        size += len(piece)
    text = "".join(pieces)
    return text if not stack else text[:_MAX_MESSAGE] + "…"


_END = object()


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


def _dict_parts(value: dict[object, object]) -> Iterator[object]:
    for index, (key, item) in enumerate(value.items()):
        yield _Text(("{" if index == 0 else ", ") + repr(key) + ": ")
        yield item
    yield _Text("}")


def _list_parts(value: list[object]) -> Iterator[object]:
    for index, item in enumerate(value):
        yield _Text("[" if index == 0 else ", ")
        yield item
    yield _Text("]")


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
