"""``main``: run the selected cases, print the table, write ``bench/results.json`` (and
``bench/results.md``, the same table in Markdown) and append a line to ``bench/history.md``."""

from __future__ import annotations

import signal
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

import bench.scenarios  # noqa: F401  # registers the scenarios
from bench import report
from bench.config import Config, ConfigError
from bench.core import SCENARIOS, Bench, Row, Scenario

PEER_CASES = ("P1",)


def main() -> int:
    # Wide enough for the table when the output is a file or a pipe (make bench | tee).
    console = Console() if sys.stdout.isatty() else Console(width=200)
    try:
        config = Config.from_env()
        selected = _selected(config)
    except ConfigError as exc:
        console.print(f"[red]bench:[/] {exc}")
        return 2
    # A plain SIGTERM would skip every `finally`, leaving servers running in their own sessions.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    started = datetime.now(UTC)
    console.print(
        f"[bold]flowgate bench[/]: {config.seconds:g} s per load, {config.connections} "
        f"connections, {config.load_generator} load generator"
    )
    try:
        rows, failures = _run_all(console, config, selected)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; every server was stopped[/]")
        return 130
    report.print_table(console, rows, failures)
    doc = report.document(config, started=started, rows=rows, failures=failures)
    report.write_json(report.RESULTS_PATH, doc)
    report.RESULTS_PATH.with_suffix(".md").write_text(report.markdown_table(rows))
    report.append_history(report.HISTORY_PATH, doc)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    console.print(
        f"written to {report.RESULTS_PATH} (and .md); a line appended to {report.HISTORY_PATH}; "
        f"{elapsed / 60:.1f} min"
    )
    return 1 if failures else 0


def _run_all(
    console: Console, config: Config, selected: list[Scenario]
) -> tuple[list[Row], dict[str, str]]:
    rows: list[Row] = []
    failures: dict[str, str] = {}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flowgate-bench-")))
        bench = Bench(config, workdir=workdir, stack=stack)
        for scenario in selected:
            console.print(f"• {scenario.name}: {scenario.description}  [dim]{_clock()}[/]")
            try:
                rows += scenario.run(bench)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                failures[scenario.name] = f"{type(exc).__name__}: {exc}"
                console.print(f"  [red]failed:[/] {failures[scenario.name]}")
    return rows, failures


def _selected(config: Config) -> list[Scenario]:
    """Every case but the peers' (``BENCH_PEERS=1`` adds them), or those named."""
    if config.scenarios is None:
        return [s for s in SCENARIOS.values() if config.peers or s.name not in PEER_CASES]
    names = list(config.scenarios)
    names += [name for name in PEER_CASES if config.peers and name not in names]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise ConfigError(
            f"BENCH_SCENARIOS: unknown {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    return [SCENARIOS[name] for name in names]


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)


def _clock() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")
