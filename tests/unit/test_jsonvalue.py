"""``jsonvalue``: orjson, and the standard library past orjson's 254 levels (DESIGN §7: 512)."""

from __future__ import annotations

import json

import pytest

from flowgate import jsonvalue
from flowgate.types import JSON


def _nested(depth: int, leaf: JSON = "é") -> JSON:
    value: JSON = [leaf]
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_dumps_value_512_deep_returns_compact_utf8_json() -> None:
    value = _nested(512)

    encoded = jsonvalue.dumps(value)

    assert encoded == ('{"a":' * 511 + '["é"]' + "}" * 511).encode()
    assert json.loads(encoded) == value


@pytest.mark.parametrize(
    "leaf", [float("nan"), "\ud800", object()], ids=["nan", "surrogate", "object"]
)
def test_dumps_deep_value_that_is_not_json_raises_type_error(leaf: object) -> None:
    with pytest.raises(TypeError):
        jsonvalue.dumps(_nested(300, leaf))  # type: ignore[arg-type]  # not JSON on purpose
