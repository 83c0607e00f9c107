"""Retry policies: ``retry: {maxAttempts, backoff, initialDelayMs, maxDelayMs, jitter}``.

A step's own block overrides the workflow's, key by key. The next attempt is a durable timer:
the run waits (holding no worker) until the delay has passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from flowgate.types import JSON

_KEYS = {"maxAttempts", "backoff", "initialDelayMs", "maxDelayMs", "jitter"}
MAX_ATTEMPTS = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: str = "exponential"
    initial_delay_ms: int = 1000
    max_delay_ms: int = 300_000
    jitter: bool = False

    def delay_after(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (counting from 1)."""
        delay = float(self.initial_delay_ms)
        if self.backoff == "exponential":
            delay *= 2 ** min(attempt - 1, 40)
        delay = min(delay, float(self.max_delay_ms))
        if self.jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return timedelta(milliseconds=delay)


NO_RETRY = RetryPolicy()


def check_retry(value: JSON) -> list[tuple[list[str | int], str]]:
    """Problems with a ``retry`` block: (path inside the block, message)."""
    if not isinstance(value, dict):
        return [([], "must be an object")]
    problems: list[tuple[list[str | int], str]] = []
    for key in sorted(set(value) - _KEYS):
        problems.append(([key], f"unknown retry setting (one of {', '.join(sorted(_KEYS))})"))
    attempts = value.get("maxAttempts")
    if "maxAttempts" in value and not _int_between(attempts, 1, MAX_ATTEMPTS):
        problems.append((["maxAttempts"], f"must be an integer from 1 to {MAX_ATTEMPTS}"))
    if "backoff" in value and value["backoff"] not in ("fixed", "exponential"):
        problems.append((["backoff"], "must be fixed or exponential"))
    for key in ("initialDelayMs", "maxDelayMs"):
        if key in value and not _int_between(value[key], 0, 86_400_000):
            problems.append(([key], "must be an integer from 0 to 86400000"))
    if "jitter" in value and not isinstance(value["jitter"], bool):
        problems.append((["jitter"], "must be true or false"))
    return problems


def _int_between(value: JSON, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def policy_for(step_retry: JSON, workflow_retry: JSON) -> RetryPolicy:
    """The effective policy of a step (both blocks already checked)."""
    merged = {
        **(workflow_retry if isinstance(workflow_retry, dict) else {}),
        **(step_retry if isinstance(step_retry, dict) else {}),
    }
    if not merged:
        return NO_RETRY
    return RetryPolicy(
        max_attempts=int(merged.get("maxAttempts", 3)),  # type: ignore[arg-type]
        backoff=str(merged.get("backoff", "exponential")),
        initial_delay_ms=int(merged.get("initialDelayMs", 1000)),  # type: ignore[arg-type]
        max_delay_ms=int(merged.get("maxDelayMs", 300_000)),  # type: ignore[arg-type]
        jitter=bool(merged.get("jitter", False)),
    )
