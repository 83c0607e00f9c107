"""Strict JSON request bodies (DESIGN §3)."""

from __future__ import annotations

import pytest

from flowgate import errors
from flowgate.api.body import parse_json, parse_yaml


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'"\\ud800"',
        b'{"a": "x\\u0000y"}',
        b'{"\\u0000": 1}',
        b"123456789012345678901234567890",
        b"-9223372036854775809",
        b"{",
        b"\xff\xfe",
    ],
)
def test_parse_json_rejects_what_postgres_or_json_cannot_hold(raw: bytes) -> None:
    with pytest.raises(errors.InvalidRequest):
        parse_json(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"18446744073709551615", 18446744073709551615),
        (b"-9223372036854775808", -9223372036854775808),
        (b'{"a": "\\\\u0000"}', {"a": "\\u0000"}),
        (b'{"n": 1.5e300}', {"n": 1.5e300}),
        ('{"名前": "ü"}'.encode(), {"名前": "ü"}),
    ],
)
def test_parse_json_accepts_edge_values(raw: bytes, value: object) -> None:
    assert parse_json(raw) == value


def test_parse_yaml_keeps_dates_and_norway_as_strings() -> None:
    assert parse_yaml(b"when: 2024-01-15\ncountry: no\nflag: on\nyes_bool: true\n") == {
        "when": "2024-01-15",
        "country": "no",
        "flag": "on",
        "yes_bool": True,
    }


def test_parse_yaml_invalid_raises_invalid_request() -> None:
    with pytest.raises(errors.InvalidRequest):
        parse_yaml(b"a: [1, 2")
