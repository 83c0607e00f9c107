"""Keeping secrets out of error messages and logs.

A run's env values are shown as ``***`` in every response; an error message must not bring one
back in clear ("Illegal header value b'Bearer …'"), nor a connection credential. The executor
gives each run a :class:`Redactor` with the run's env values and adds the credentials of every
connection a step opens; each message is passed through it before it is stored or logged.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowgate.types import JSON

MASK = "***"
#: Shorter values are not masked: replacing every "eu" or "1" in a message would make it
#: unreadable, and a value that short is no secret (secrets belong in connections).
MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in values:
            self._add(value)

    def _add(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LENGTH:
            self._secrets.add(value)

    def add_json(self, value: JSON) -> None:
        """Every string inside ``value`` (a credentials object) becomes a secret."""
        if isinstance(value, str):
            self._add(value)
        elif isinstance(value, dict):
            for item in value.values():
                self.add_json(item)
        elif isinstance(value, list):
            for item in value:
                self.add_json(item)

    def __call__(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text
