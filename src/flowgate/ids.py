"""Identifiers: a DESIGN prefix plus a time-sortable random part.

The part after the prefix is 10 Crockford base32 characters of milliseconds since the epoch
followed by 16 of randomness (80 bits), so ids sort by creation time, as ULIDs do.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """A new id such as ``run_01jd8…``; ``prefix`` is given without the underscore."""
    millis = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return f"{prefix}_{_base32(millis, 10)}{_base32(secrets.randbits(80), 16)}"
