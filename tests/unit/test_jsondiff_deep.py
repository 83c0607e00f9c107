"""Idempotent resends compare inputs nested as deep as a request body may be (DESIGN §7)."""

from __future__ import annotations

from flowgate.service.jsondiff import differences, json_equal
from flowgate.types import JSON

DEPTH = 600


def _nested(leaf: JSON, depth: int = DEPTH) -> JSON:
    value = leaf
    for level in range(depth):
        value = [value] if level % 100 == 0 else {"k": value}
    return value


def _path(depth: int = DEPTH) -> list[str | int]:
    return [0 if level % 100 == 0 else "k" for level in reversed(range(depth))]


def test_json_equal_600_deep_equal_values_is_true() -> None:
    assert json_equal(_nested(1), _nested(1.0))


def test_json_equal_600_deep_bool_against_number_is_false() -> None:
    assert not json_equal(_nested(True), _nested(1))


def test_differences_600_deep_values_equal_returns_nothing() -> None:
    assert differences(_nested(1), _nested(1.0)) == []


def test_differences_600_deep_leaf_changed_returns_its_full_path() -> None:
    assert differences(_nested("a"), _nested("b")) == [
        {"path": _path(), "stored": "a", "sent": "b"}
    ]


def test_differences_600_deep_missing_key_is_null_on_that_side() -> None:
    stored = _nested({"x": 1, "gone": 2})
    sent = _nested({"x": 1, "new": 3})

    assert differences(stored, sent) == [
        {"path": [*_path(), "gone"], "stored": 2, "sent": None},
        {"path": [*_path(), "new"], "stored": None, "sent": 3},
    ]


def test_differences_keep_depth_first_key_order() -> None:
    stored = {"a": [1, {"b": 1, "c": 2}], "d": 1, "e": 1}
    sent = {"a": [2, {"b": 2, "c": 2, "z": 0}], "d": 1.0, "e": True, "f": None}

    assert differences(stored, sent, ["in"]) == [
        {"path": ["in", "a", 0], "stored": 1, "sent": 2},
        {"path": ["in", "a", 1, "b"], "stored": 1, "sent": 2},
        {"path": ["in", "a", 1, "z"], "stored": None, "sent": 0},
        {"path": ["in", "e"], "stored": 1, "sent": True},
        {"path": ["in", "f"], "stored": None, "sent": None},
    ]
