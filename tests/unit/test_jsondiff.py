from __future__ import annotations

from flowgate.service.jsondiff import differences, json_equal


def test_json_equal_int_and_float_are_equal() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})


def test_json_equal_bool_is_not_a_number() -> None:
    assert not json_equal({"a": True}, {"a": 1})
    assert not json_equal(0, False)


def test_differences_lists_changed_added_and_removed_paths() -> None:
    stored = {"a": 1, "b": {"c": [1, 2]}, "gone": "x"}
    sent = {"a": 1, "b": {"c": [1, 3]}, "new": True}

    assert differences(stored, sent) == [
        {"path": ["b", "c", 1], "stored": 2, "sent": 3},
        {"path": ["gone"], "stored": "x", "sent": None},
        {"path": ["new"], "stored": None, "sent": True},
    ]


def test_differences_lists_of_other_length_differ_as_a_whole() -> None:
    assert differences({"l": [1]}, {"l": [1, 2]}) == [
        {"path": ["l"], "stored": [1], "sent": [1, 2]}
    ]
