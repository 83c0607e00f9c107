"""Strict reading of request bodies: JSON whatever the Content-Type, YAML where allowed."""

from __future__ import annotations

import json
import re

import orjson

from flowgate import documents, errors
from flowgate.types import JSON

_LONG_DIGITS = re.compile(rb"\d{19,}")
#: DESIGN §7. Most bodies are decided by their length and a few C-speed byte counts, without
#: walking the value (see ``_might_be_over``).
MAX_JSON_DEPTH = 512
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
    """Without recursion: two Python frames per level would pass the interpreter's limit
    before ``MAX_JSON_DEPTH``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _too_large() -> errors.InvalidRequest:
    return errors.InvalidRequest(documents.DocumentTooLarge.__doc__ or "")


def _over_limits(value: JSON) -> bool:
    """Walks the value without recursion; stops as soon as it has seen too much."""
    nodes, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if isinstance(item, dict):
            depth += 1
            nodes += len(item)  # keys are nodes, as in YAML
            stack.extend((child, depth) for child in item.values())
        elif isinstance(item, list):
            depth += 1
            stack.extend((child, depth) for child in item)
        if nodes > documents.MAX_NODES or depth > MAX_JSON_DEPTH:
            return True
    return False


def _might_be_over(raw: bytes) -> bool:
    """Upper bounds from the bytes: one ``[``/``{`` per level; every node but the root follows
    a ``[``, ``{``, ``,`` or ``:`` (inside strings they only raise the bound)."""
    if len(raw) <= MAX_JSON_DEPTH:
        return False
    openers = raw.count(b"[") + raw.count(b"{")
    if openers > MAX_JSON_DEPTH:
        return True
    if len(raw) <= documents.MAX_NODES:
        return False
    return 1 + openers + raw.count(b",") + raw.count(b":") > documents.MAX_NODES


def parse_json(raw: bytes) -> JSON:
    """Parse strictly: no NaN, no lone surrogates, no ``\\u0000``, integers within 64 bits,
    at most ``MAX_NODES`` nodes and ``MAX_JSON_DEPTH`` levels.

    orjson rejects the first two and is fast; the rarer checks run only when the bytes hint at
    them (a long digit run, a ``\\u0000`` escape, a body long or bracketed enough to be over a
    limit).
    """
    try:
        value: JSON = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if _might_be_over(raw) and "depth limit" in str(exc):  # orjson stops at 1024 levels
            raise _too_large() from exc
        raise _bad(str(exc)) from exc
    if _might_be_over(raw) and _over_limits(value):
        raise _too_large()
    if _LONG_DIGITS.search(raw):
        json.loads(raw, parse_int=_check_int, parse_constant=_reject_constant)
    if b"\\u0000" in raw and _has_nul(value):
        raise errors.InvalidRequest("Request body must not contain \\u0000 characters")
    return value


def parse_yaml(raw: bytes) -> JSON:
    try:
        return documents.parse_yaml(raw)
    except documents.DocumentTooLarge as exc:
        raise _too_large() from exc
    except documents.DocumentError as exc:
        raise errors.InvalidRequest(f"Request body is {exc}") from exc
