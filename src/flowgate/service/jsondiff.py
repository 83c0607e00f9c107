"""JSON equality as JSON sees it (``1 == 1.0``, ``true != 1``) and the paths where values differ."""

from __future__ import annotations

from flowgate.types import JSON

_MISSING = object()


def json_equal(left: JSON, right: JSON) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right


Difference = dict[str, object]


def differences(stored: JSON, sent: JSON, path: list[str | int] | None = None) -> list[Difference]:
    """``[{path, stored, sent}]`` for every leaf that differs; a missing side is ``null``."""
    here = path or []
    if isinstance(stored, dict) and isinstance(sent, dict):
        found: list[Difference] = []
        for key in list(stored) + [k for k in sent if k not in stored]:
            found += _diff_item(stored.get(key, _MISSING), sent.get(key, _MISSING), [*here, key])
        return found
    if isinstance(stored, list) and isinstance(sent, list) and len(stored) == len(sent):
        found = []
        for index, (a, b) in enumerate(zip(stored, sent, strict=True)):
            found += differences(a, b, [*here, index])
        return found
    if json_equal(stored, sent):
        return []
    return [{"path": list(here), "stored": stored, "sent": sent}]


def _diff_item(stored: object, sent: object, path: list[str | int]) -> list[Difference]:
    if stored is _MISSING or sent is _MISSING:
        return [
            {
                "path": path,
                "stored": None if stored is _MISSING else stored,
                "sent": None if sent is _MISSING else sent,
            }
        ]
    return differences(stored, sent, path)  # type: ignore[arg-type]
