"""Strict reading of request bodies: JSON whatever the Content-Type, YAML where allowed."""

from __future__ import annotations

import json
import re

import orjson

from flowgate import documents, errors
from flowgate.types import JSON

_LONG_DIGITS = re.compile(rb"\d{19,}")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _bad(message: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(f"Request body is not valid JSON: {message}")


def _check_int(text: str) -> int:
    value = int(text)
    if not _INT64_MIN <= value <= _UINT64_MAX:
        raise _bad("integers must fit in 64 bits")
    return value


def _reject_constant(name: str) -> None:
    raise _bad(f"{name} is not a JSON value")


def _has_nul(value: JSON) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def parse_json(raw: bytes) -> JSON:
    """Parse strictly: no NaN, no lone surrogates, no ``\\u0000``, integers within 64 bits.

    orjson rejects the first two and is fast; the rarer checks run only when the bytes hint at
    them (a long digit run, a ``\\u0000`` escape).
    """
    try:
        value: JSON = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(str(exc)) from exc
    if _LONG_DIGITS.search(raw):
        json.loads(raw, parse_int=_check_int, parse_constant=_reject_constant)
    if b"\\u0000" in raw and _has_nul(value):
        raise errors.InvalidRequest("Request body must not contain \\u0000 characters")
    return value


def parse_yaml(raw: bytes) -> JSON:
    try:
        return documents.parse_yaml(raw)
    except documents.DocumentError as exc:
        raise errors.InvalidRequest(f"Request body is {exc}") from exc
