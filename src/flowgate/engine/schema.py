"""Input validation against a workflow's ``inputSchema`` (JSON Schema 2020-12).

Formats are not asserted (2020-12 treats ``format`` as an annotation by default). Every failure
is reported with the path of the offending value; a missing required property is reported at
its own path with the message ``"Required"``, as the seed shows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from flowgate.types import JSON

_MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    path: list[str | int]
    message: str


def check_schema(schema: JSON) -> list[SchemaProblem]:
    """Problems with an ``inputSchema`` itself, paths inside the schema."""
    if not isinstance(schema, dict | bool):
        return [SchemaProblem([], "must be a JSON Schema object")]
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    problems = [
        SchemaProblem(list(error.absolute_path), _short(error.message))
        for error in sorted(meta.iter_errors(schema), key=lambda e: list(map(str, e.path)))
    ]
    if not problems:
        try:
            Draft202012Validator(schema).is_valid({})
        except (SchemaError, Exception) as exc:
            problems.append(SchemaProblem([], _short(f"unusable schema: {exc}")))
    return problems


class InputValidator:
    """A validator compiled once per workflow version."""

    def __init__(self, schema: JSON | None) -> None:
        self._schema = schema
        self._validator = None if schema is None else Draft202012Validator(schema)

    def validate(self, value: JSON) -> tuple[JSON, list[SchemaProblem]]:
        """The input with ``default``s applied, and one problem per failure."""
        if self._validator is None:
            return value, []
        with_defaults = _apply_defaults(self._schema, copy.deepcopy(value))
        problems = [_problem(e) for e in self._validator.iter_errors(with_defaults)]
        problems.sort(key=lambda p: [str(part) for part in p.path])
        return with_defaults, problems


def _problem(error: ValidationError) -> SchemaProblem:
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = _missing_property(error)
        if missing is not None:
            return SchemaProblem([*path, missing], "Required")
    return SchemaProblem(path, _short(error.message))


def _missing_property(error: ValidationError) -> str | None:
    required = error.validator_value if isinstance(error.validator_value, list) else []
    instance = error.instance
    for name in required:
        if isinstance(name, str) and name not in instance and repr(name) in error.message:
            return name
    return None


def _apply_defaults(schema: JSON | None, value: JSON) -> JSON:
    """Fill in ``properties.*.default`` for absent keys, recursing into present objects."""
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, subschema in properties.items():
            if not isinstance(subschema, dict):
                continue
            if name not in value and "default" in subschema:
                value[name] = copy.deepcopy(subschema["default"])
            elif name in value:
                value[name] = _apply_defaults(subschema, value[name])
    return value


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
