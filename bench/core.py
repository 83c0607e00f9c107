"""What scenarios share: the ``Bench`` context, the ``Row`` they report, the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    "steps": [
        {"id": "a", "type": "transform", "config": {"mapping": {"x": "{{input.n}}"}}},
        {"id": "b", "type": "transform", "config": {"mapping": {"y": "{{steps.a.output.x}}"}}},
        {"id": "c", "type": "transform", "config": {"mapping": {"z": "{{steps.b.output.y}}"}}},
    ],
}
"""DESIGN §10's 3-step ``transform`` workflow, created on the shared flowgate server."""

RUN_BODY = b'{"input": {"n": 1}}'
JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the table and one entry of ``results.json``."""

    key: str
    """Stable name in ``results.json``; ``bare`` and ``sqlite`` are the ratio baselines."""
    label: str
    rate: float
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


class Bench:
    """Per-run context handed to every scenario."""

    def __init__(self, config: Config, *, workdir: Path, stack: ExitStack) -> None:
        self.config = config
        self.workdir = workdir
        self._stack = stack
        self._flowgate: targets.Flowgate | None = None

    def flowgate(self) -> targets.Flowgate:
        """The shared flowgate server with ``wf_bench``; started on first use, stopped at exit."""
        if self._flowgate is None:
            server = self._stack.enter_context(targets.flowgate_server(self.workdir))
            server.create_workflow(BENCH_WORKFLOW)
            self._flowgate = server
        return self._flowgate

    def spec(self, url: str, *, headers: Mapping[str, str], body: bytes = b"") -> LoadSpec:
        """A POST load with the configured connections and duration."""
        return LoadSpec(
            url=url,
            headers=dict(headers),
            body=body,
            connections=self.config.connections,
            seconds=self.config.seconds,
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
