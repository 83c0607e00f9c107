"""The one JSON encoder for what flowgate stores and renders. A leaf: imports nothing from flowgate.

orjson is fast but refuses values nested more than 254 levels deep, while request bodies may be
nested up to 512 (DESIGN §7). Only then does this fall back to the standard library, with
orjson's compact output (no spaces, UTF-8, no NaN), so a deep but valid value is stored and
rendered instead of ending in a 500.
"""

from __future__ import annotations

import json

import orjson

#: JSON text longer than this is parsed in a worker thread, not on the event loop (about a
#: millisecond of parsing: a request's worth of time for everything else waiting).
OFF_LOOP_BYTES = 64 * 1024
#: orjson's message when a value is nested deeper than it encodes (254 levels).
_ORJSON_TOO_DEEP = "Recursion limit reached"


def dumps(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON; raises ``TypeError`` (as orjson does) if it is not JSON."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if str(exc) != _ORJSON_TOO_DEEP:
            raise
        return _stdlib_dumps(value)


def dumps_str(value: object) -> str:
    """``dumps`` as text, for drivers and columns that take ``str``."""
    return dumps(value).decode()


def _stdlib_dumps(value: object) -> bytes:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode()
    except (ValueError, RecursionError) as exc:  # NaN, a lone surrogate, deeper than the stack
        raise orjson.JSONEncodeError(str(exc)) from exc
