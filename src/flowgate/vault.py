"""Encrypting connection credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256).

The key is derived from ``FLOWGATE_SECRET_KEY``. Without one, a random key is generated once and
kept in ``{FLOWGATE_DATA_DIR}/secret.key`` (mode 0600, its directory 0700 when flowgate creates
it), so a dev server keeps working across restarts; production sets the variable. An empty or
unreadable key file is an error, never a silent fallback to a weaker key. A leaf: imports only
the ``jsonvalue`` leaf from flowgate.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from flowgate import jsonvalue


class VaultError(Exception):
    """Credentials could not be decrypted (the secret key changed?)."""


class SecretKeyError(VaultError):
    """The secret key is empty or cannot be read; the message says which file and why."""


class Vault:
    """Reads (or creates) its key on first use, so building a server touches no file;
    :meth:`check` reads it at start-up so that a bad key stops the server there."""

    def __init__(self, secret: Callable[[], str]) -> None:
        self._secret = secret
        self._cipher: Fernet | None = None

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> Vault:
        return cls(lambda: secret_key if secret_key is not None else _local_secret(data_dir))

    @property
    def _fernet(self) -> Fernet:
        if self._cipher is None:
            secret = self._secret()
            if not secret.strip():
                raise SecretKeyError("the secret key is empty")
            digest = hashlib.sha256(("flowgate-connections:" + secret).encode()).digest()
            self._cipher = Fernet(base64.urlsafe_b64encode(digest))
        return self._cipher

    def check(self) -> None:
        """Read (or create) the key now. Raises SecretKeyError when it is empty or unreadable."""
        self._fernet  # noqa: B018 - the property reads the key and caches the cipher

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (signing the monitor's cookies, say), derived from the
        secret key and unrelated to the one that encrypts credentials."""
        secret = self._secret()
        if not secret.strip():
            raise SecretKeyError("the secret key is empty")
        return hmac.new(secret.encode(), b"flowgate-derive:" + purpose.encode(), "sha256").digest()

    def encrypt(self, value: object) -> str:
        # jsonvalue, not orjson: credentials may be nested deeper than orjson's 254 levels.
        return self._fernet.encrypt(jsonvalue.dumps(value)).decode()

    def decrypt(self, token: str) -> object:
        """Raises VaultError when ``token`` was not encrypted with this key."""
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise VaultError("Cannot decrypt connection credentials: wrong secret key?") from exc


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700; existing ones are left alone."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 (its missing directories 0700) unless it exists;
    True if this call created it."""
    make_private_dirs(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def _local_secret(data_dir: Path) -> str:
    path = data_dir / "secret.key"
    if not path.exists():
        try:
            _write_new_secret(path)
        except OSError as exc:
            raise SecretKeyError(
                f"cannot create the secret key file {path}: {exc.strerror or exc}"
            ) from exc
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretKeyError(f"cannot read the secret key file {path}: {reason}") from exc
    if not secret:
        raise SecretKeyError(
            f"the secret key file {path} is empty: restore it, or set FLOWGATE_SECRET_KEY"
        )
    return secret


def _write_new_secret(path: Path) -> None:
    """Write a random key beside ``path``, then link it into place: a process starting at the
    same moment reads either no file or a whole one, and the first one linked wins."""
    make_private_dirs(path.parent)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
            handle.flush()
            os.fsync(handle.fileno())  # never link a key that a crash could leave empty
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink()
