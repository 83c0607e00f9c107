"""Encrypting connection credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256).

The key is derived from ``FLOWGATE_SECRET_KEY``. Without one, a random key is generated once and
kept in ``{FLOWGATE_DATA_DIR}/secret.key`` (mode 0600), so a dev server keeps working across
restarts; production sets the variable. A leaf: imports nothing from flowgate.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken


class VaultError(Exception):
    """Credentials could not be decrypted (the secret key changed?)."""


class Vault:
    """Reads (or creates) its key on first use, so building a server touches no file."""

    def __init__(self, secret: Callable[[], str]) -> None:
        self._secret = secret
        self._cipher: Fernet | None = None

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> Vault:
        return cls(lambda: secret_key or _local_secret(data_dir))

    @property
    def _fernet(self) -> Fernet:
        if self._cipher is None:
            digest = hashlib.sha256(("flowgate-connections:" + self._secret()).encode()).digest()
            self._cipher = Fernet(base64.urlsafe_b64encode(digest))
        return self._cipher

    def encrypt(self, value: object) -> str:
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def decrypt(self, token: str) -> object:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise VaultError("Cannot decrypt connection credentials: wrong secret key?") from exc


def _local_secret(data_dir: Path) -> str:
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    return secret
