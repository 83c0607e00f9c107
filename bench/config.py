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
    """Measured duration of each load (``BENCH_SECONDS``, default 8)."""
    connections: int
    """Concurrent keep-alive connections (``BENCH_CONNECTIONS``, default 64)."""
    load_generator: str
    """``python`` or ``wrk``; ``BENCH_LOADGEN=auto`` (default) takes wrk when it is installed."""
    scenarios: tuple[str, ...] | None
    """Only these cases (``BENCH_SCENARIOS=R1,T1``, ``make bench CASE=T1``); ``None`` runs all."""
    drain_secs: float
    """How long to wait for the triggered runs to finish (``BENCH_DRAIN_SECS``, default 120)."""
    repeats: int
    """Measurements of each case after its warm-up; the table shows the median
    (``BENCH_REPEATS``, default 3)."""
    e1_runs: int
    """Runs triggered by E1's 64 clients (``BENCH_E1_RUNS``, default 5,000; the issue: 20,000)."""
    drain_backlog: int
    """Runs pre-enqueued for E2's drains (``BENCH_E2_RUNS``, default 2,000)."""
    m1_runs: int
    """Runs executed before M1 reads the server's peak RSS (``BENCH_M1_RUNS``, default 10,000;
    the issue: 100,000)."""
    m1_seeded: int
    """Runs in the database when M1 times the runs list (``BENCH_M1_SEEDED``, default 1,000,000)."""
    peers: bool
    """Also run Celery + Redis (``BENCH_PEERS=1``; ``make bench PEERS=1``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        raw = env.get("BENCH_SCENARIOS", "") or env.get("BENCH_CASE", "")
        names = [n.strip().upper() for n in raw.split(",") if n.strip()]
        return cls(
            seconds=_positive(env, "BENCH_SECONDS", 8.0),
            connections=int(_positive(env, "BENCH_CONNECTIONS", 64, integer=True)),
            load_generator=_load_generator(env.get("BENCH_LOADGEN", "auto")),
            scenarios=tuple(names) or None,
            drain_secs=_positive(env, "BENCH_DRAIN_SECS", 120.0),
            repeats=int(_positive(env, "BENCH_REPEATS", 3, integer=True)),
            e1_runs=int(_positive(env, "BENCH_E1_RUNS", 5000, integer=True)),
            drain_backlog=int(_positive(env, "BENCH_E2_RUNS", 2000, integer=True)),
            m1_runs=int(_positive(env, "BENCH_M1_RUNS", 10_000, integer=True)),
            m1_seeded=int(_positive(env, "BENCH_M1_SEEDED", 1_000_000, integer=True)),
            peers=env.get("BENCH_PEERS", "").strip().lower() in ("1", "true", "yes"),
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
