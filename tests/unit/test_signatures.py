"""signatures.py: the streamed check (``prepare`` + ``update`` per chunk) agrees with ``verify``."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
import standardwebhooks

from flowgate.service import signatures

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = int(NOW.timestamp())
BODY = b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n\xff\x00bytes\r\n--b--\r\n'


def _chunks(body: bytes) -> list[bytes]:
    return [body[i : i + 7] for i in range(0, len(body), 7)]


def _streamed(style: str, secret: str, headers: dict[str, str], body: bytes) -> str | None:
    pending = signatures.prepare(style, secret, headers, now=NOW)
    for chunk in _chunks(body):
        pending.update(chunk)
    return pending.finish()


@pytest.mark.parametrize("style", ["flowgate", "github"])
def test_hex_styles_streamed_and_whole_agree(style: str) -> None:
    digest = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    headers = {signatures.SIGNATURE_HEADERS[style]: f"sha256={digest}"}

    assert signatures.verify(style, "s3cret", BODY, headers, now=NOW) is None
    assert _streamed(style, "s3cret", headers, BODY) is None
    with pytest.raises(signatures.SignatureError, match="does not match"):
        _streamed(style, "s3cret", headers, BODY + b"x")


def test_stripe_streamed_returns_the_replay_key() -> None:
    digest = hmac.new(b"s3cret", f"{STAMP}.".encode() + BODY, hashlib.sha256).hexdigest()
    headers = {"stripe-signature": f"t={STAMP},v1=bad,v1={digest}"}

    assert _streamed("stripe", "s3cret", headers, BODY) == f"stripe:{STAMP}:{digest}"
    assert signatures.verify("stripe", "s3cret", BODY, headers, now=NOW) == (
        f"stripe:{STAMP}:{digest}"
    )


def test_standard_webhooks_streamed_matches_the_library() -> None:
    secret = signatures.new_secret("standard-webhooks")
    text = '{"test": 2432232314}'
    signed = standardwebhooks.Webhook(secret).sign("msg_1", NOW, text)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(STAMP), "webhook-signature": signed}

    assert _streamed("standard-webhooks", secret, headers, text.encode()) == (
        "standard-webhooks:msg_1"
    )
    assert signatures.verify("standard-webhooks", secret, text.encode(), headers, now=NOW) == (
        "standard-webhooks:msg_1"
    )


def test_prepare_refuses_missing_and_stale_headers_without_a_body() -> None:
    with pytest.raises(signatures.SignatureError, match="Missing x-flowgate-signature"):
        signatures.prepare("flowgate", "s3cret", {}, now=NOW)
    with pytest.raises(signatures.SignatureError, match="tolerance"):
        signatures.prepare(
            "stripe", "s3cret", {"stripe-signature": f"t={STAMP - 301},v1=x"}, now=NOW
        )


@pytest.mark.parametrize(
    ("style", "headers"),
    [
        ("stripe", {"stripe-signature": "t=²,v1=ab"}),
        (
            "standard-webhooks",
            {"webhook-id": "msg_1", "webhook-timestamp": "١٢٣", "webhook-signature": "v1,x"},
        ),
    ],
)
def test_prepare_non_ascii_digits_in_a_timestamp_are_a_signature_error(
    style: str, headers: dict[str, str]
) -> None:
    """``"²".isdigit()`` is True but ``int("²")`` fails: that was a 500, not a 401."""
    with pytest.raises(signatures.SignatureError):
        signatures.prepare(style, "whsec_c2VjcmV0", headers, now=NOW)
