"""The table on the terminal and ``bench/results.json``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
HISTORY_PATH = Path(__file__).resolve().parent / "history.md"
THROUGHPUT_REF = "R1"
"""Rates are divided by R1's (64 connections)."""
LATENCY_REF = "R1.1c"
"""Latencies are divided by R1's 1-client p50."""


@dataclass(frozen=True, slots=True)
class Target:
    """The issue's target for one row: ``figure`` (``ratio``, ``p50x``, ``p99x``, ``value``)
    compared with ``limit`` by ``op`` (``>=`` or ``<=``)."""

    figure: str
    op: str
    limit: float
    label: str = ""
    """Printed instead of the comparison, when that reads better."""

    def text(self) -> str:
        if self.label:
            return self.label
        what = {"ratio": "", "p50x": "p50 ", "p99x": "p99 ", "value": ""}[self.figure]
        unit = "" if self.figure == "value" else "x"
        return f"{what}{self.op} {self.limit:g}{unit}"


TARGETS: dict[str, tuple[Target, ...]] = {
    "T1": (Target("ratio", ">=", 0.60),),
    "T3": (Target("ratio", ">=", 0.55),),
    "E1": (Target("ratio", ">=", 0.20),),
    "E2.2": (Target("ratio", ">=", 1.6),),
    "S1.1c": (Target("p50x", "<=", 7), Target("p99x", "<=", 25)),
    "S2": (Target("p50x", "<=", 7),),
    "M1.rss": (Target("value", "<=", 150),),
    "M1.list": (Target("p50x", "<=", 25),),
    "C1": (Target("value", "<=", 1.5),),
    "LG": (Target("value", ">=", 0.9), Target("value", "<=", 1.1)),
    "P1": (Target("value", "<=", 0.2, label="E1 >= 5x this"),),
}
"""Issue 12's targets. ``P1``'s is flowgate's E1 ≥ 5x Celery's, i.e. Celery/E1 <= 0.2."""

_LATENCY_ROWS = ("R1.1c", "S1.1c", "S1.16c", "S2", "S2.pg", "S4", "M1.list", "P1.rt")
"""Rows whose figure that counts is a latency: their ratio is p50 / R1's 1-client p50."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A row's reference, ratio and target as printed."""

    reference: str
    ratio: float | None
    p99_ratio: float | None
    target: str
    met: bool | None


def verdicts(rows: Sequence[Row]) -> dict[str, Verdict]:
    by_key = {row.key: row for row in rows}
    rate_ref = by_key.get(THROUGHPUT_REF)
    lat_ref = by_key.get(LATENCY_REF)
    out: dict[str, Verdict] = {}
    for row in rows:
        reference, ratio, p99_ratio = "", None, None
        if row.key in _LATENCY_ROWS:
            if row.key != LATENCY_REF and lat_ref and lat_ref.p50_ms:
                reference = "R1 1-client p50"
                ratio = _div(row.p50_ms, lat_ref.p50_ms)
                p99_ratio = _div(row.p99_ms, lat_ref.p50_ms)
        elif row.key == "E2.2" and "E2.1" in by_key:
            reference, ratio = "E2.1", _div(row.rate, by_key["E2.1"].rate)
        elif row.key == "P1" and "E1" in by_key:
            reference, ratio = "flowgate E1", _div(row.rate, by_key["E1"].rate)
        elif row.unit.endswith("/s") and row.key != THROUGHPUT_REF and rate_ref:
            reference, ratio = "R1", _div(row.rate, rate_ref.rate)
        targets = TARGETS.get(row.key, ())
        checks = [_check(t, row, ratio, p99_ratio) for t in targets]
        met = None if not checks or None in checks else all(checks)
        out[row.key] = Verdict(
            reference, ratio, p99_ratio, ", ".join(t.text() for t in targets), met
        )
    return out


def _div(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def _check(target: Target, row: Row, ratio: float | None, p99_ratio: float | None) -> bool | None:
    value = {
        "ratio": ratio,
        "p50x": ratio,
        "p99x": p99_ratio,
        "value": ratio if row.key == "P1" else row.rate,
    }[target.figure]
    if value is None:
        return None
    return value >= target.limit if target.op == ">=" else value <= target.limit


def print_table(console: Console, rows: Sequence[Row], failures: dict[str, str]) -> None:
    """One line per case; notes and failures below."""
    table = Table(title="flowgate benchmark", title_justify="left", box=box.SIMPLE)
    table.add_column("case", no_wrap=True)
    table.add_column("what", no_wrap=True)
    for title in ("figure", "p50 ms", "p99 ms", "reference", "ratio", "target", "met"):
        table.add_column(title, justify="right", no_wrap=True)
    judged = verdicts(rows)
    for row in rows:
        verdict = judged[row.key]
        table.add_row(
            row.key,
            row.label,
            figure(row),
            _ms(row.p50_ms),
            _ms(row.p99_ms),
            verdict.reference,
            _ratio_text(verdict),
            verdict.target,
            _met(verdict.met),
        )
    console.print(table)
    for row in rows:
        if row.note or row.errors:
            errors = f"[red]{row.errors:,} errors[/]" if row.errors else ""
            console.print(f"  {row.key}: {'; '.join(filter(None, [errors, row.note]))}")
    for name, message in failures.items():
        console.print(f"[red]case {name} failed:[/] {message}")


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table in Markdown, for docs/performance.md."""
    judged = verdicts(rows)
    lines = [
        "| case | what | figure | p50 ms | p99 ms | reference | ratio | target | met |",
        "|---|---|--:|--:|--:|---|--:|---|---|",
    ]
    for row in rows:
        v = judged[row.key]
        met = {True: "yes", False: "**no**", None: ""}[v.met]
        cells = [row.key, row.label, figure(row), _ms(row.p50_ms), _ms(row.p99_ms), v.reference,
                 _ratio_text(v), v.target, met]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(row: Row) -> str:
    if row.unit in ("MB", "s", "x"):
        return f"{row.rate:.2f} {row.unit}" if row.unit != "MB" else f"{row.rate:.0f} MB"
    return f"{row.rate:,.0f} {row.unit}" if row.rate >= 100 else f"{row.rate:.1f} {row.unit}"


def _ratio_text(verdict: Verdict) -> str:
    if verdict.ratio is None:
        return ""
    text = f"{verdict.ratio:.2f}"
    if verdict.p99_ratio is not None:
        text += f" / p99 {verdict.p99_ratio:.1f}"
    return text


def _met(met: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[met]


def document(
    config: Config, *, started: datetime, rows: Sequence[Row], failures: dict[str, str]
) -> dict[str, Any]:
    judged = verdicts(rows)
    return {
        "timestamp": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {
            "seconds": config.seconds,
            "connections": config.connections,
            "load_generator": config.load_generator,
            "repeats": config.repeats,
            "drain_secs": config.drain_secs,
            "e1_runs": config.e1_runs,
            "e2_backlog": config.drain_backlog,
            "m1_runs": config.m1_runs,
            "m1_seeded": config.m1_seeded,
            "flowgate_workers": FLOWGATE_WORKERS,
        },
        "cases": [asdict(row) | {"verdict": asdict(judged[row.key])} for row in rows],
        "failures": failures,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")


def append_history(path: Path, doc: dict[str, Any]) -> None:
    """One dated line per run: each case's figure and ratio, and which targets were missed."""
    if not path.exists():
        path.write_text(
            "# Benchmark history\n\nOne line per `make bench` run (appended by `bench/report.py`): "
            "case = figure (ratio to the same run's R1; latencies to R1's 1-client p50).\n\n"
        )
    parts = []
    for case in doc["cases"]:
        verdict = case["verdict"]
        ratio = f" ({verdict['ratio']:.2f}x)" if verdict["ratio"] is not None else ""
        value = (
            f"{case['p50_ms']:.2f} ms p50"
            if case["key"] in _LATENCY_ROWS and case["p50_ms"]
            else _plain(case)
        )
        mark = " MISSED" if verdict["met"] is False else ""
        parts.append(f"{case['key']} = {value}{ratio}{mark}")
    parts += [f"{name} FAILED" for name in doc["failures"]]
    machine, config = doc["machine"], doc["config"]
    line = (
        f"- {doc['timestamp']} `{machine.get('git_commit')}` {config['load_generator']}, "
        f"{config['seconds']:g} s x {config['repeats']}: " + "; ".join(parts) + "\n"
    )
    with path.open("a") as history:
        history.write(line)


def _plain(case: dict[str, Any]) -> str:
    rate, unit = case["rate"], case["unit"]
    return f"{rate:,.0f} {unit}" if rate >= 100 else f"{rate:.2f} {unit}"


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
    return "" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


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
