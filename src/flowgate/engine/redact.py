"""Keeping secrets out of error messages and logs.

A run's env values are shown as ``***`` in every response; an error message must not bring one
back in clear ("Illegal header value b'Bearer …'"), nor a connection credential. The executor
gives each run a :class:`Redactor` with the run's env values and adds the credentials of every
connection a step opens; each message is passed through it before it is stored or logged.

A secret reaches a message in the forms libraries print it in, so each is masked in its plain,
stripped, URL-quoted (``quote`` and ``quote_plus``), Python-repr and JSON-string forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from flowgate.types import JSON

MASK = "***"
#: Shorter forms are masked only as whole tokens: replacing every "1" inside "HTTP 401" would
#: make messages unreadable, yet "region eu not found" must not show the value "eu".
MIN_SECRET_LENGTH = 4
_WORD = "A-Za-z0-9"


def _forms(value: str) -> set[str]:
    """The ways ``value`` appears in messages; blank forms carry no secret and are skipped."""
    forms = {
        value,
        value.strip(),
        quote(value, safe=""),
        quote_plus(value),
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    return {form for form in forms if form.strip()}


def _alternative(form: str) -> str:
    if len(form) >= MIN_SECRET_LENGTH:
        return re.escape(form)
    return f"(?<![{_WORD}]){re.escape(form)}(?![{_WORD}])"


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self._add(value)

    def _add(self, value: str) -> None:
        new = _forms(value) - self._secrets
        if new:
            self._secrets |= new
            self._pattern = None  # compiled again on next use

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

    def _compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            # Longest first: at each position the longest secret starting there is found. The
            # lookahead finds overlapping occurrences too, so two overlapping secrets are both
            # masked whole instead of one leaving the other's tail in clear.
            ordered = sorted(self._secrets, key=lambda form: (-len(form), form))
            self._pattern = re.compile("(?=(" + "|".join(map(_alternative, ordered)) + "))")
        return self._pattern

    def __call__(self, text: str) -> str:
        if not self._secrets:
            return text
        spans: list[list[int]] = []
        for match in self._compiled().finditer(text):
            start, end = match.span(1)
            if spans and start < spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in spans:
            pieces += [text[last:start], MASK]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)
