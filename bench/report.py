"""The table on the terminal and ``bench/results.json``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.config import Config
from bench.core import Row
from bench.targets import FLOWGATE_WORKERS

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
BASELINES = {"bare": "/bare", "sqlite": "/sqlite"}
"""Row keys every other row's rate is divided by, and their column titles."""
HEADLINE = ("trigger", "bare")
"""DESIGN §10: "the ratio to the bare endpoint is the figure that counts"."""


def ratios(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Per row key: its rate over each baseline's rate (only baselines that ran)."""
    bases = {r.key: r.rate for r in rows if r.key in BASELINES and r.rate > 0}
    return {row.key: {base: row.rate / rate for base, rate in bases.items()} for row in rows}


def print_table(console: Console, rows: Sequence[Row], failures: dict[str, str]) -> None:
    """One line per row (rate = per second, in the row's unit), notes and failures below."""
    table = Table(title="flowgate benchmark", title_justify="left", box=box.SIMPLE)
    table.add_column("scenario", no_wrap=True)
    for title in ("per s", "p50 ms", "p99 ms", "errors", *BASELINES.values()):
        table.add_column(title, justify="right", no_wrap=True)
    per_row = ratios(rows)
    for row in rows:
        table.add_row(
            row.label,
            f"{row.rate:,.0f}",
            _ms(row.p50_ms),
            _ms(row.p99_ms),
            f"[red]{row.errors:,}[/]" if row.errors else "0",
            *(_ratio(per_row[row.key].get(base)) for base in BASELINES),
        )
    console.print(table)
    for row in rows:
        notes = [f"in {row.unit}" if row.unit != "req/s" else "", row.note]
        if any(notes):
            console.print(f"  {row.label}: {'; '.join(filter(None, notes))}")
    for name, message in failures.items():
        console.print(f"[red]scenario {name} failed:[/] {message}")


def document(
    config: Config, *, started: datetime, rows: Sequence[Row], failures: dict[str, str]
) -> dict[str, Any]:
    per_row = ratios(rows)
    key, base = HEADLINE
    return {
        "timestamp": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {
            "seconds": config.seconds,
            "connections": config.connections,
            "load_generator": config.load_generator,
            "drain_secs": config.drain_secs,
            "flowgate_workers": FLOWGATE_WORKERS,
            "database": "sqlite",
        },
        "headline": {"trigger_to_bare_ratio": per_row.get(key, {}).get(base)},
        "scenarios": [asdict(row) | {"ratios": per_row[row.key]} for row in rows],
        "failures": failures,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "flowgate_version": _version("flowgate"),
        "uvicorn_version": _version("uvicorn"),
        "git_commit": _git_commit(),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=RESULTS_PATH.parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None
