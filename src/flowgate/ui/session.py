"""The monitor's session: a signed cookie that names a key (never holds it), and CSRF tokens.

The cookie is ``base64url(payload).base64url(HMAC-SHA256(payload))``, the HMAC key derived from
the server's secret key (``Vault.derive_key``). The payload holds the key's id, its project, an
expiry and a random nonce; the CSRF token of every form is an HMAC of that nonce, so it is bound
to one sign-in. Each request looks the key up again (through the key cache, which revoking a key
clears): a revoked or expired key signs the browser out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from flowgate import errors
from flowgate.service import auth
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.store.base import KeyRow, ProjectRow

COOKIE = "flowgate_session"
LIFETIME = timedelta(hours=12)
_CACHE_PREFIX = "ui-key-id:"  # never a SHA-256 hex digest, the cache's other keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    key_id: str
    project_id: str
    expires_at: int  # epoch seconds
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(signing_key: bytes, purpose: bytes, data: bytes) -> bytes:
    return hmac.new(signing_key, purpose + b"\x00" + data, hashlib.sha256).digest()


def new_session(key_id: str, project_id: str, now: datetime) -> Session:
    return Session(
        key_id=key_id,
        project_id=project_id,
        expires_at=int((now + LIFETIME).timestamp()),
        nonce=secrets.token_urlsafe(16),
    )


def encode(signing_key: bytes, session: Session) -> str:
    payload = orjson.dumps(
        {"k": session.key_id, "p": session.project_id, "e": session.expires_at, "n": session.nonce}
    )
    return f"{_b64(payload)}.{_b64(_mac(signing_key, b'session', payload))}"


def decode(signing_key: bytes, value: str | None, now: datetime) -> Session | None:
    """The session of a cookie this server signed and that has not expired; else None."""
    if not value or len(value) > 1000:
        return None
    body, _, signature = value.partition(".")
    try:
        payload = _unb64(body)
        given = _unb64(signature)
    except ValueError:
        return None
    if not hmac.compare_digest(given, _mac(signing_key, b"session", payload)):
        return None
    try:
        data = orjson.loads(payload)
        session = Session(
            key_id=str(data["k"]), project_id=str(data["p"]), expires_at=int(data["e"]),
            nonce=str(data["n"]),
        )  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if session.expires_at <= now.timestamp():
        return None
    return session


def csrf_token(signing_key: bytes, session: Session) -> str:
    return _b64(_mac(signing_key, b"csrf", session.nonce.encode()))


def csrf_ok(signing_key: bytes, session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(
        (token or "").encode(), csrf_token(signing_key, session).encode()
    )


async def _key_by_id(svc: Services, session: Session) -> tuple[KeyRow, ProjectRow] | None:
    cache_key = _CACHE_PREFIX + session.key_id
    found = svc.key_cache.get(cache_key)
    if found is not None:
        return found
    key = next(
        (
            row
            for row in await svc.store.list_keys(session.project_id)
            if row["id"] == session.key_id
        ),
        None,
    )
    project = await svc.store.get_project(session.project_id) if key is not None else None
    if key is None or project is None:
        return None
    svc.key_cache.put(cache_key, (key, project))
    return key, project


async def principal_of(
    svc: Services, session: Session, category: Category = Category.READ
) -> Principal | None:
    """Who the session acts as, checked as ``auth.authenticate`` checks a key; None when the key
    is gone, revoked or expired. Raises RateLimited like the API."""
    found = await _key_by_id(svc, session)
    if found is None:
        return None
    key, project = found
    try:
        auth.check_usable(key, svc.clock.now())
    except errors.Unauthorized:
        return None
    return await auth.admit(svc, key, project, category)


def signed_out_error() -> errors.Unauthorized:
    return errors.Unauthorized("Signed out: sign in again with an API key")
