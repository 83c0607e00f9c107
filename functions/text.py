"""Text helpers for ``python`` steps; flowgate loads every ``*.py`` file of ``functions/`` at
start-up (FLOWGATE_FUNCTIONS_DIR). See docs/python-steps.md."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowgate.engine.steps import StepContext


def _slug(text: str, max_length: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)[:max_length].strip("-")


def slugify(config: dict[str, Any], context: StepContext) -> dict[str, str]:
    """``{text, maxLength?}`` → ``{slug}``: "Crème brûlée, 2 pcs!" → "creme-brulee-2-pcs"."""
    text = config.get("text")
    if not isinstance(text, str):
        raise ValueError("slugify needs config.text, a string")
    return {"slug": _slug(text, int(config.get("maxLength", 80)))}


def unique_slug(config: dict[str, Any], context: StepContext) -> dict[str, str]:
    """Like ``slugify``, plus a suffix drawn from the step's idempotency key: unique per run,
    and the same on every retry of the step, so a retried step never creates a second slug."""
    slug = slugify(config, context)["slug"]
    suffix = hashlib.sha256(context.idempotency_key.encode()).hexdigest()[:8]
    return {"slug": f"{slug}-{suffix}" if slug else suffix}
