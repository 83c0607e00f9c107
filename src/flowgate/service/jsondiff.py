"""JSON equality as JSON sees it (``1 == 1.0``, ``true != 1``) and the paths where values differ.

Both walk with an explicit stack, not recursion: a request body may be nested 512 levels deep
(DESIGN §7), deeper than Python's recursion limit allows at two frames a level.
"""

from __future__ import annotations

from flowgate.types import JSON

_MISSING = object()

#: A path as a chain of ``(parent, key)`` links, so that walking an equal subtree builds no lists.
_Path = tuple["_Path | None", str | int] | None


def json_equal(left: JSON, right: JSON) -> bool:
    pending: list[tuple[JSON, JSON]] = [(left, right)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif not _leaf_equal(a, b):
            return False
    return True


def _leaf_equal(left: JSON, right: JSON) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


Difference = dict[str, object]


def differences(stored: JSON, sent: JSON, path: list[str | int] | None = None) -> list[Difference]:
    """``[{path, stored, sent}]`` for every leaf that differs; a missing side is ``null``.

    Depth first, in key order (the stored value's keys, then keys only ``sent`` has).
    """
    root: _Path = None
    for part in path or []:
        root = (root, part)
    found: list[Difference] = []
    # LIFO: children are pushed in reverse so that they come out in order.
    pending: list[tuple[object, object, _Path]] = [(stored, sent, root)]
    while pending:
        a, b, here = pending.pop()
        if a is _MISSING or b is _MISSING:
            found.append(
                _difference(here, None if a is _MISSING else a, None if b is _MISSING else b)
            )
        elif isinstance(a, dict) and isinstance(b, dict):
            keys = list(a) + [key for key in b if key not in a]
            pending.extend(
                (a.get(key, _MISSING), b.get(key, _MISSING), (here, key)) for key in reversed(keys)
            )
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            pending.extend((a[i], b[i], (here, i)) for i in reversed(range(len(a))))
        elif not json_equal(a, b):  # type: ignore[arg-type]  # only _MISSING is not JSON
            found.append(_difference(here, a, b))
    return found


def _difference(here: _Path, stored: object, sent: object) -> Difference:
    parts: list[str | int] = []
    while here is not None:
        here, part = here
        parts.append(part)
    parts.reverse()
    return {"path": parts, "stored": stored, "sent": sent}
