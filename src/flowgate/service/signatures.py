"""Webhook signature styles: pure checks of a delivery's raw body and headers against a secret.

Every comparison is ``hmac.compare_digest``. Stripe and Standard Webhooks sign a timestamp too:
it must be within ``TOLERANCE`` of ``now`` (the time the delivery was received), and the check
returns a *replay key* that the inbox's unique index refuses to see twice for one trigger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import standardwebhooks

STYLES = ("flowgate", "github", "stripe", "standard-webhooks")
TOLERANCE = timedelta(minutes=5)
#: The header each style signs with; removed from a run's input and masked in the inbox.
SIGNATURE_HEADERS = {
    "flowgate": "x-flowgate-signature",
    "github": "x-hub-signature-256",
    "stripe": "stripe-signature",
    "standard-webhooks": "webhook-signature",
}
_MAX_ID = 255


class SignatureError(Exception):
    """The delivery's signature is missing, wrong, stale or replayed (the message says which)."""


def new_secret(style: str) -> str:
    """A random signing secret; Standard Webhooks wants ``whsec_`` + base64 of 24 to 64 bytes."""
    if style == "standard-webhooks":
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def secret_problem(style: str, secret: str) -> str | None:
    """Why ``secret`` cannot sign ``style`` deliveries, or None."""
    if not 1 <= len(secret) <= 500:
        return "must be a string of 1 to 500 characters"
    if style == "standard-webhooks":
        try:
            standardwebhooks.Webhook(secret)
        except (binascii.Error, ValueError, standardwebhooks.webhooks.EmptyWebhookSecretError):
            return "must be whsec_ followed by base64 (Standard Webhooks)"
    return None


def verify(
    style: str, secret: str, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> str | None:
    """The replay key of a correctly signed delivery (None for untimed styles).

    Raises SignatureError naming what is wrong; ``headers`` have lower-case names.
    """
    if style == "stripe":
        return _stripe(secret, body, headers.get("stripe-signature"), now)
    if style == "standard-webhooks":
        return _standard(secret, body, headers, now)
    _hex_sha256(secret, body, headers.get(SIGNATURE_HEADERS[style]), SIGNATURE_HEADERS[style])
    return None


def _hex_sha256(secret: str, body: bytes, header: str | None, name: str) -> None:
    """flowgate and GitHub: ``sha256=<hex HMAC-SHA256 of the raw body>``."""
    if not header:
        raise SignatureError(f"Missing {name} header")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode("latin-1")):
        raise SignatureError(f"{name} does not match")


def _stripe(secret: str, body: bytes, header: str | None, now: datetime) -> str:
    """``Stripe-Signature: t=<unix>,v1=<hex HMAC of "{t}.{body}">`` (several v1 allowed)."""
    if not header:
        raise SignatureError("Missing Stripe-Signature header")
    stamp, candidates = "", []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            stamp = value
        elif name == "v1":
            candidates.append(value)
    if not stamp.isdigit() or len(stamp) > 12 or not candidates:
        raise SignatureError("Stripe-Signature must carry t=<timestamp> and v1=<signature>")
    _within_tolerance(int(stamp), now)
    signed = stamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    for candidate in candidates:
        if hmac.compare_digest(expected, candidate.encode("latin-1")):
            return f"stripe:{stamp}:{candidate}"
    raise SignatureError("Stripe-Signature does not match")


def _standard(secret: str, body: bytes, headers: Mapping[str, str], now: datetime) -> str:
    """``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>`` (space-separated
    list). The library signs; the tolerance uses our clock (the library's reads the wall clock,
    which neither tests nor an inbox replay can move)."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureError("Missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(msg_id) > _MAX_ID or not stamp.isdigit() or len(stamp) > 12:
        raise SignatureError("Invalid webhook-id or webhook-timestamp header")
    _within_tolerance(int(stamp), now)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise SignatureError("Standard Webhooks bodies must be UTF-8") from exc
    signed_at = datetime.fromtimestamp(int(stamp), UTC)
    expected = standardwebhooks.Webhook(secret).sign(msg_id, signed_at, text).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(expected, candidate.encode("latin-1")):
            return f"standard-webhooks:{msg_id}"
    raise SignatureError("webhook-signature does not match")


def _within_tolerance(stamp: int, now: datetime) -> None:
    if abs(now.timestamp() - stamp) > TOLERANCE.total_seconds():
        raise SignatureError("Signature timestamp is outside the 5-minute tolerance")
