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
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

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


class Pending:
    """A delivery whose signature headers passed the cheap checks (present, well-formed, within
    the tolerance): feed it the raw body, chunk by chunk, then ``finish``."""

    __slots__ = ("_candidates", "_encode", "_mac", "_name", "_replay")

    def __init__(
        self,
        *,
        key: bytes,
        prefix: bytes,
        name: str,
        candidates: list[str],
        encode: Callable[[bytes], str],
        replay: Callable[[str], str | None],
    ) -> None:
        self._mac = hmac.new(key, prefix, hashlib.sha256)
        self._name = name
        self._candidates = candidates
        self._encode = encode
        self._replay = replay

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def finish(self) -> str | None:
        """The replay key (None for untimed styles). Raises SignatureError on a mismatch."""
        expected = self._encode(self._mac.digest()).encode()
        for candidate in self._candidates:
            if hmac.compare_digest(expected, candidate.encode("latin-1")):
                return self._replay(candidate)
        raise SignatureError(f"{self._name} does not match")


def verify(
    style: str, secret: str, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> str | None:
    """The replay key of a correctly signed delivery (None for untimed styles).

    Raises SignatureError naming what is wrong; ``headers`` have lower-case names.
    """
    pending = prepare(style, secret, headers, now=now)
    if style == "standard-webhooks":
        try:
            body.decode()
        except UnicodeDecodeError as exc:
            raise SignatureError("Standard Webhooks bodies must be UTF-8") from exc
    pending.update(body)
    return pending.finish()


def prepare(style: str, secret: str, headers: Mapping[str, str], *, now: datetime) -> Pending:
    """The checks that need no body: the headers are there, well-formed and within the
    tolerance. Raises SignatureError; ``headers`` have lower-case names."""
    if style == "stripe":
        return _stripe(secret, headers.get("stripe-signature"), now)
    if style == "standard-webhooks":
        return _standard(secret, headers, now)
    return _hex_sha256(secret, headers.get(SIGNATURE_HEADERS[style]), SIGNATURE_HEADERS[style])


def _hex_sha256(secret: str, header: str | None, name: str) -> Pending:
    """flowgate and GitHub: ``sha256=<hex HMAC-SHA256 of the raw body>``."""
    if not header:
        raise SignatureError(f"Missing {name} header")
    return Pending(
        key=secret.encode(),
        prefix=b"",
        name=name,
        candidates=[header.strip()],
        encode=lambda digest: "sha256=" + digest.hex(),
        replay=lambda _candidate: None,
    )


def _stripe(secret: str, header: str | None, now: datetime) -> Pending:
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
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12 or not candidates:
        raise SignatureError("Stripe-Signature must carry t=<timestamp> and v1=<signature>")
    _within_tolerance(int(stamp), now)
    return Pending(
        key=secret.encode(),
        prefix=stamp.encode() + b".",
        name="Stripe-Signature",
        candidates=candidates,
        encode=bytes.hex,
        replay=lambda candidate: f"stripe:{stamp}:{candidate}",
    )


def _standard(secret: str, headers: Mapping[str, str], now: datetime) -> Pending:
    """``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>`` (space-separated
    list), signing ``"{id}.{timestamp}.{body}"`` with the base64-decoded ``whsec_`` secret, as
    the ``standardwebhooks`` library does; the tolerance uses our clock (the library's reads the
    wall clock, which neither tests nor an inbox replay can move)."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureError("Missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(msg_id) > _MAX_ID or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise SignatureError("Invalid webhook-id or webhook-timestamp header")
    _within_tolerance(int(stamp), now)
    return Pending(
        key=_standard_key(secret),
        prefix=f"{msg_id}.{int(stamp)}.".encode(),
        name="webhook-signature",
        candidates=signatures.split(),
        encode=lambda digest: "v1," + base64.b64encode(digest).decode(),
        replay=lambda _candidate: f"standard-webhooks:{msg_id}",
    )


def _standard_key(secret: str) -> bytes:
    """The key ``standardwebhooks.Webhook(secret)`` signs with (padding added, as it does)."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_") + "==")
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("The trigger's signing secret is not Standard Webhooks") from exc


def _within_tolerance(stamp: int, now: datetime) -> None:
    if abs(now.timestamp() - stamp) > TOLERANCE.total_seconds():
        raise SignatureError("Signature timestamp is outside the 5-minute tolerance")
