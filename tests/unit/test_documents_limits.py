"""What one document may cost (DESIGN §7): nodes after alias expansion, nesting depth."""

from __future__ import annotations

import base64
import re

import pytest

from flowgate import documents, errors
from flowgate.api import views
from flowgate.api.body import parse_json, parse_yaml
from flowgate.api.middleware import _SANE_REQUEST_ID
from flowgate.engine.definition import STEP_ID
from flowgate.service.connections import CONNECTION_ID, CONNECTION_TYPE
from flowgate.service.workflows import WORKFLOW_ID

TOO_LARGE = "Document too large or too deep"


def _alias_bomb(levels: int = 8) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _aliased(copies: int) -> str:
    """1004 + 1000 * copies nodes once expanded: a 999-item list and ``copies`` aliases of it."""
    return "a: &a [" + ", ".join(["1"] * 999) + "]\nb: [" + ", ".join(["*a"] * copies) + "]\n"


@pytest.mark.parametrize(
    "text",
    [
        _alias_bomb(),
        _aliased(99),
        "a: &a [*a]\n",
        "[" * 20_000 + "]" * 20_000,
        "{a: " * 20_000 + "1" + "}" * 20_000,
        "- " * 20_000 + "x\n",
        "".join(" " * level + "a:\n" for level in range(2_000)),
        "[" * 65 + "]" * 65,
        "a: &a " + "[" * 60 + "]" * 60 + "\nb: [[[[*a]]]]\n",
    ],
    ids=["alias-bomb", "aliases-over-100k", "recursive-alias", "deep-flow-seq", "deep-flow-map",
         "deep-block-seq", "deep-block-map", "depth-65", "alias-adds-depth"],
)  # fmt: skip
def test_parse_yaml_over_limits_raises_too_large(text: str) -> None:
    with pytest.raises(documents.DocumentTooLarge) as caught:
        documents.parse_yaml(text)

    assert str(caught.value) == TOO_LARGE


def test_body_parse_yaml_alias_bomb_is_invalid_request_with_exact_message() -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_yaml(_alias_bomb().encode())

    assert caught.value.message == TOO_LARGE


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        _nested(513),
        _nested(2_000),
        b"[" + b",".join([b"1"] * 100_000) + b"]",
        b"{" + b",".join(b'"%d":1' % i for i in range(50_000)) + b"}",
    ],
    ids=["depth-513", "depth-2000", "100001-nodes", "keys-count"],
)
def test_parse_json_over_limits_raises_exact_message(raw: bytes) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_json(raw)

    assert caught.value.message == TOO_LARGE


def test_parse_json_deep_nul_escape_is_invalid_request() -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_json(_nested(500, b'"\\u0000"'))

    assert caught.value.message == "Request body must not contain \\u0000 characters"


@pytest.mark.parametrize(
    "raw",
    [b"9" * 70 + b":run_x", b"1:run_\x00", b"1:run x"],
    ids=["overflow", "nul", "space"],
)
def test_decode_cursor_that_does_not_fit_raises_invalid_request(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    with pytest.raises(errors.InvalidRequest) as caught:
        views.decode_cursor(cursor)

    assert caught.value.message == "Invalid cursor"


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (WORKFLOW_ID, "wf_x\n"),
        (CONNECTION_ID, "conn_x\n"),
        (CONNECTION_TYPE, "http\n"),
        (STEP_ID, "step\n"),
        (_SANE_REQUEST_ID, "req-1\n"),
    ],
    ids=["workflow", "connection", "connection-type", "step", "request-id"],
)
def test_id_pattern_trailing_newline_does_not_match(pattern: re.Pattern[str], text: str) -> None:
    assert pattern.match(text) is None
    assert pattern.match(text.rstrip("\n")) is not None
