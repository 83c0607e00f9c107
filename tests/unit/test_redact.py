"""``engine/redact.py``: an error message never shows a masked env value or a credential, in
any of the forms libraries print it in (DESIGN §7, "Secrets at rest and in messages")."""

from __future__ import annotations

import pytest

from flowgate.engine.redact import Redactor

KEY = "q8Zx+7/abcDEF=="


def test_redactor_masks_a_plain_occurrence() -> None:
    assert Redactor([KEY])(f"bad key {KEY}!") == "bad key ***!"


@pytest.mark.parametrize(
    ("secret", "message", "expected"),
    [
        (
            KEY,
            "HTTP 401 from https://api.example/v1?api_key=q8Zx%2B7%2FabcDEF%3D%3D",
            "HTTP 401 from https://api.example/v1?api_key=***",
        ),
        ("pass word&1", "refused: password=pass+word%261", "refused: password=***"),
        (
            "sk_test_abcdef\n",
            "Illegal header value b'Bearer sk_test_abcdef\\n'",
            "Illegal header value b'Bearer ***'",
        ),
        ("  sk_live_9f8e7d  ", "Invalid token sk_live_9f8e7d.", "Invalid token ***."),
        ('pa"ss\\word', 'body {"password": "pa\\"ss\\\\word"}', 'body {"password": "***"}'),
        ("tök€n-ünï", 'body {"t": "t\\u00f6k\\u20acn-\\u00fcn\\u00ef"}', 'body {"t": "***"}'),
    ],
    ids=["quote", "quote_plus", "repr", "strip", "json", "json-ascii"],
)
def test_redactor_masks_an_encoded_occurrence(secret: str, message: str, expected: str) -> None:
    assert Redactor([secret])(message) == expected


def test_redactor_credentials_added_later_are_masked() -> None:
    redact = Redactor(["first-secret"])
    assert redact("first-secret token-2") == "*** token-2"

    redact.add_json({"headers": {"X-Token": "token-2"}})

    assert redact("first-secret token-2") == "*** ***"


@pytest.mark.parametrize(
    ("value", "message", "expected"),
    [
        ("eu", "region eu not found", "region *** not found"),
        ("1", "HTTP 401 from step 1", "HTTP 401 from step ***"),
        ("eu", "europe, neutral", "europe, neutral"),
        ("a b", "user=a+b", "user=***"),
    ],
)
def test_redactor_short_value_is_masked_as_a_whole_token(
    value: str, message: str, expected: str
) -> None:
    assert Redactor([value])(message) == expected


def test_redactor_overlapping_secrets_are_both_masked_whole() -> None:
    assert Redactor(["abcd", "bcdefgh"])("xabcdefghy abcd") == "x***y ***"


def test_redactor_blank_value_masks_nothing() -> None:
    assert Redactor(["", "  "])("a  b") == "a  b"
