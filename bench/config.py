"""The ``BENCH_*`` environment knobs, read once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bench import load_wrk

LOAD_GENERATORS = ("auto", "python", "wrk")


class ConfigError(Exception):
    """A bad ``BENCH_*`` value; the message names the variable."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    seconds: float
    """Measured duration of each load scenario (``BENCH_SECONDS``, default 10)."""
    connections: int
    """Concurrent keep-alive connections (``BENCH_CONNECTIONS``, default 64)."""
    load_generator: str
    """``python`` or ``wrk``; ``BENCH_LOADGEN=auto`` (default) takes wrk when it is installed."""
    scenarios: tuple[str, ...] | None
    """Only these scenarios (``BENCH_SCENARIOS=bare,trigger``); ``None`` runs all."""
    drain_secs: float
    """How long to wait for the triggered runs to finish (``BENCH_DRAIN_SECS``, default 60)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        names = [n.strip() for n in env.get("BENCH_SCENARIOS", "").split(",") if n.strip()]
        return cls(
            seconds=_positive(env, "BENCH_SECONDS", 10.0),
            connections=int(_positive(env, "BENCH_CONNECTIONS", 64, integer=True)),
            load_generator=_load_generator(env.get("BENCH_LOADGEN", "auto")),
            scenarios=tuple(names) or None,
            drain_secs=_positive(env, "BENCH_DRAIN_SECS", 60.0),
        )


def _positive(env: Mapping[str, str], name: str, default: float, *, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _load_generator(raw: str) -> str:
    choice = raw.strip().lower() or "auto"
    if choice not in LOAD_GENERATORS:
        raise ConfigError(f"BENCH_LOADGEN must be one of {', '.join(LOAD_GENERATORS)}")
    if choice == "wrk" and not load_wrk.available():
        raise ConfigError("BENCH_LOADGEN=wrk but `wrk` is not on PATH")
    if choice == "auto":
        return "wrk" if load_wrk.available() else "python"
    return choice
