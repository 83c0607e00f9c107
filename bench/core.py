"""What scenarios share: the ``Bench`` context, the ``Row`` they report, the registry."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import targets
from bench.config import Config
from bench.load import LoadResult, LoadSpec, measure

BENCH_WORKFLOW_ID = "wf_bench"
BENCH_WORKFLOW: dict[str, Any] = {
    "id": BENCH_WORKFLOW_ID,
    "name": "bench",
    "status": "active",
    "inputSchema": {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
    },
    "steps": [
        {"id": "a", "type": "transform", "config": {"mapping": {"x": "{{input.n}}"}}},
        {"id": "b", "type": "transform", "config": {"mapping": {"y": "{{steps.a.output.x}}"}}},
        {"id": "c", "type": "transform", "config": {"mapping": {"z": "{{steps.b.output.y}}"}}},
    ],
}
"""DESIGN §10's 3-step ``transform`` workflow (its input validated by a schema), created on the
shared flowgate server."""

RUN_BODY = b'{"input": {"n": 1}}'
JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the table and one entry of ``results.json``."""

    key: str
    """The case (``R1``, ``T1``, ``S1.1c``…), as in ``results.json`` and ``report.TARGETS``."""
    label: str
    rate: float
    """The figure, in ``unit`` (a rate, or MB, seconds, a ratio)."""
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    count: int = 0
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_load(cls, key: str, label: str, result: LoadResult, *, note: str = "") -> Row:
        if result.generator_cpu is not None and result.generator_cpu > 0.9:
            note = "; ".join(filter(None, [note, "load generator saturated: figure is a floor"]))
        return cls(
            key=key,
            label=label,
            rate=result.rate,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            errors=result.errors,
            count=result.ok,
            note=note,
            details={"load": result.as_dict()},
        )


def median_row(rows: Sequence[Row], *, note: str = "") -> Row:
    """The repetitions of one case as one row: the median of each figure, every one kept."""
    if not rows:
        raise ValueError("no repetitions to summarise")
    first = rows[0]
    p50s = [r.p50_ms for r in rows if r.p50_ms is not None]
    p99s = [r.p99_ms for r in rows if r.p99_ms is not None]
    reps = ", ".join(_short(r.rate) for r in rows)
    return dataclasses.replace(
        first,
        rate=statistics.median(r.rate for r in rows),
        p50_ms=statistics.median(p50s) if p50s else None,
        p99_ms=statistics.median(p99s) if p99s else None,
        errors=sum(r.errors for r in rows),
        count=sum(r.count for r in rows),
        note="; ".join(filter(None, [note or first.note, f"median of {len(rows)}: {reps}"])),
        details={"repetitions": [dataclasses.asdict(r) for r in rows]},
    )


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


class Bench:
    """Per-run context handed to every scenario."""

    def __init__(self, config: Config, *, workdir: Path, stack: ExitStack) -> None:
        self.config = config
        self.workdir = workdir
        self._stack = stack
        self._flowgate: targets.Flowgate | None = None
        self._cluster: Any = None

    def postgres(self) -> Any:
        """One throw-away PostgreSQL cluster (``tests.pg``) for every case of this run."""
        if self._cluster is None:
            from tests.pg import start_cluster

            cluster = start_cluster()
            self._stack.callback(cluster.stop)
            self._cluster = cluster
        return self._cluster

    def repeat(self, measure: Callable[[], Row], *, note: str = "") -> Row:
        """``measure`` ``config.repeats`` times (after the caller's warm-up); the median row."""
        return median_row([measure() for _ in range(self.config.repeats)], note=note)

    def flowgate(self) -> targets.Flowgate:
        """The shared flowgate server with ``wf_bench``; started on first use, stopped at exit."""
        if self._flowgate is None:
            server = self._stack.enter_context(targets.flowgate_server(self.workdir))
            server.create_workflow(BENCH_WORKFLOW)
            self._flowgate = server
        return self._flowgate

    def spec(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes = b"",
        method: str = "POST",
        connections: int | None = None,
        idempotency_half: bool = False,
    ) -> LoadSpec:
        """A load with the configured connections (unless given) and duration."""
        return LoadSpec(
            url=url,
            method=method,
            headers=dict(headers),
            body=body,
            connections=connections or self.config.connections,
            seconds=self.config.seconds,
            idempotency_half=idempotency_half,
        )

    def load(self, spec: LoadSpec) -> LoadResult:
        return measure(spec, generator=self.config.load_generator)


ScenarioFn = Callable[[Bench], list[Row]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    run: ScenarioFn


SCENARIOS: dict[str, Scenario] = {}
"""Every scenario, in run order (registration order): references first, on an idle machine."""


def scenario(name: str, description: str) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario under ``name``; a duplicate name raises."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS[name] = Scenario(name, description, fn)
        return fn

    return register
