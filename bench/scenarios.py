"""The scenarios of DESIGN §10, in run order. A new one is a function here:

    @scenario("sync", "x-api-wait: true latency of the 3-step workflow")
    def sync(bench: Bench) -> list[Row]:
        fg = bench.flowgate()
        ...
        return [Row(key="sync", label="…", rate=…, p50_ms=…, p99_ms=…)]

Rows whose key is ``bare`` or ``sqlite`` are the baselines every other row is compared with.
"""

from __future__ import annotations

from bench import targets
from bench.core import (
    BENCH_WORKFLOW_ID,
    JSON_HEADERS,
    RUN_BODY,
    Bench,
    Row,
    scenario,
)
from bench.load import LoadResult, warm_up
from bench.refapps import SQLITE_PATH_ENV


@scenario("bare", "bare FastAPI endpoint under uvicorn: POST /run → 201")
def bare(bench: Bench) -> list[Row]:
    with targets.reference_server("bench.refapps:bare_app", bench.workdir) as url:
        result = _post_load(bench, url + "/run")
    return [Row.from_load("bare", "bare FastAPI 201", result)]


@scenario("sqlite", "bare FastAPI endpoint: one SQLite insert + commit per request")
def sqlite(bench: Bench) -> list[Row]:
    db = str(bench.workdir / "reference.db")
    with targets.reference_server(
        "bench.refapps:sqlite_app", bench.workdir, **{SQLITE_PATH_ENV: db}
    ) as url:
        result = _post_load(bench, url + "/run")
    return [Row.from_load("sqlite", "bare SQLite commit", result)]


@scenario("trigger", "flowgate POST …/run (async, durable), then until its runs complete")
def trigger(bench: Bench) -> list[Row]:
    fg = bench.flowgate()
    url = f"{fg.base_url}/api/v1/workflows/{BENCH_WORKFLOW_ID}/run"
    spec = bench.spec(url, headers={**JSON_HEADERS, **fg.auth}, body=RUN_BODY)
    warm_up(spec)
    if fg.wait_idle(BENCH_WORKFLOW_ID, timeout=bench.config.drain_secs) is None:
        raise RuntimeError("the warm-up runs did not finish")
    result = bench.load(spec)
    drain = fg.wait_idle(BENCH_WORKFLOW_ID, timeout=bench.config.drain_secs)
    return [
        Row.from_load("trigger", "flowgate trigger", result),
        _end_to_end(bench, fg, result, drain),
    ]


def _post_load(bench: Bench, url: str) -> LoadResult:
    spec = bench.spec(url, headers=JSON_HEADERS, body=RUN_BODY)
    warm_up(spec)
    return bench.load(spec)


def _end_to_end(bench: Bench, fg: targets.Flowgate, load: LoadResult, drain: float | None) -> Row:
    """DESIGN §10 item 2, first cut: the runs the trigger load started, until all completed."""
    failed = fg.count_runs(BENCH_WORKFLOW_ID, targets.UNSUCCESSFUL)
    left = 0 if drain is not None else fg.count_runs(BENCH_WORKFLOW_ID, targets.UNFINISHED)
    waited = drain if drain is not None else bench.config.drain_secs
    completed = max(load.ok - left - failed, 0)
    total = load.seconds + waited
    if drain is None:
        note = f"NOT drained: {left} runs unfinished {waited:.0f} s after the load"
    else:
        note = (
            f"3-step runs from the first trigger to the last completion; {completed} runs, "
            f"all done {drain:.1f} s after the load stopped"
        )
    return Row(
        key="end_to_end",
        label="flowgate end-to-end",
        rate=completed / total if total > 0 else 0.0,
        unit="runs/s",
        errors=failed + left,
        count=completed,
        note=note,
        details={
            "runs_started": load.ok,
            "runs_failed": failed,
            "runs_unfinished": left,
            "drain_secs": drain,
            "first_trigger_to_last_completion_secs": total,
        },
    )
