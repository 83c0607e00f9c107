"""The scenarios of DESIGN §10, in run order. A new one is a function here:

    @scenario("sync", "x-api-wait: true latency of the 3-step workflow")
    def sync(bench: Bench) -> list[Row]:
        fg = bench.flowgate()
        ...
        return [Row(key="sync", label="…", rate=…, p50_ms=…, p99_ms=…)]

Rows whose key is ``bare`` or ``sqlite`` are the baselines every other row is compared with.
"""

from __future__ import annotations

import dataclasses
import time

from bench import targets
from bench.core import (
    BENCH_WORKFLOW,
    BENCH_WORKFLOW_ID,
    JSON_HEADERS,
    RUN_BODY,
    Bench,
    Row,
    scenario,
)
from bench.load import LoadResult, percentile, warm_up
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


PG_BACKLOG = 2000


@scenario("pg_drain", "PostgreSQL: 1 then 2 `flowgate worker` processes drain a 3-step backlog")
def pg_drain(bench: Bench) -> list[Row]:
    """DESIGN §10 item 5: pre-enqueued runs (no API load), drained by N worker processes."""
    from tests.pg import start_cluster

    cluster = start_cluster()
    try:
        rows = [_drain_row(bench, cluster, workers) for workers in (1, 2)]
    finally:
        cluster.stop()
    one, two = rows
    if one.rate > 0:
        two = dataclasses.replace(two, note=f"{two.note}; {two.rate / one.rate:.2f}x one process")
    return [one, two]


def _drain_row(bench: Bench, cluster: object, workers: int) -> Row:
    database = f"drain{workers}"
    url = targets.create_database(cluster, database)
    with targets.flowgate_server(bench.workdir, database_url=url, workers=0) as fg:
        fg.create_workflow(BENCH_WORKFLOW)
        for start in range(0, PG_BACKLOG, 1000):
            batch = fg.client.post(
                f"/api/v1/workflows/{BENCH_WORKFLOW_ID}/run/batch",
                json={"runs": [{"input": {"n": i}} for i in range(start, start + 1000)]},
            )
            targets.expect_ok(batch, "enqueue backlog")
        with targets.worker_processes(bench.workdir, url, count=workers):
            drained = fg.wait_idle(BENCH_WORKFLOW_ID, timeout=bench.config.drain_secs * 3)
    if drained is None:
        raise RuntimeError(f"{workers} worker(s) did not drain the backlog")
    return Row(
        key=f"pg_drain_{workers}",
        label=f"pg drain, {workers} worker proc",
        rate=PG_BACKLOG / drained,
        unit="runs/s",
        count=PG_BACKLOG,
        note=f"{PG_BACKLOG} runs in {drained:.1f} s",
    )


EVENT_WORKFLOW_ID = "wf_bench_event"
EVENT_WORKFLOW: dict[str, object] = {
    "id": EVENT_WORKFLOW_ID,
    "name": "bench event",
    "status": "active",
    "steps": [
        {"id": "wait", "type": "wait_for_event", "config": {"eventKey": "bench-{{input.n}}"}},
        {
            "id": "after",
            "type": "transform",
            "config": {"mapping": {"ok": "{{steps.wait.output}}"}},
        },
    ],
}
EVENT_SAMPLES = 200


@scenario("event_resume", "send → run completed: a wait_for_event then one transform step")
def event_resume(bench: Bench) -> list[Row]:
    """DESIGN §10 item 4, on SQLite (the shared server) and PostgreSQL (one process)."""
    from tests.pg import start_cluster

    rows = [_resume_row(bench, bench.flowgate(), "sqlite")]
    cluster = start_cluster()
    try:
        url = targets.create_database(cluster, "events")
        with targets.flowgate_server(bench.workdir, database_url=url) as fg:
            rows.append(_resume_row(bench, fg, "postgresql"))
    finally:
        cluster.stop()
    return rows


def _resume_row(bench: Bench, fg: targets.Flowgate, database: str) -> Row:
    """Start runs that wait, one at a time; for each, once its trigger waits, time a send until
    a long-poll of the run answers ``completed``."""
    fg.create_workflow(EVENT_WORKFLOW)
    samples = [_resume_once(fg, f"{database}-{n}") for n in range(EVENT_SAMPLES + 20)][20:]
    samples.sort()
    return Row(
        key=f"event_resume_{database}",
        label=f"event send→completed, {database}",
        rate=1000 * len(samples) / sum(samples) if samples else 0.0,
        unit="runs/s",
        p50_ms=percentile(samples, 50),
        p99_ms=percentile(samples, 99),
        count=len(samples),
        note=f"{len(samples)} sends after 20 warm-up ones, one at a time (1 client)",
    )


def _resume_once(fg: targets.Flowgate, n: str) -> float:
    started = fg.client.post(f"/api/v1/workflows/{EVENT_WORKFLOW_ID}/run", json={"input": {"n": n}})
    targets.expect_created(started, "start a waiting run")
    run_id = started.json()["data"]["runId"]
    fg.wait_event(f"bench-{n}", timeout=30.0)
    begin = time.perf_counter()
    sent = fg.client.post(f"/v1/events/bench-{n}/send", json={"payload": {"n": n}})
    targets.expect_ok(sent, "send the event")
    ended = fg.client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": "30"})
    elapsed_ms = (time.perf_counter() - begin) * 1000
    if ended.json()["data"]["status"] != "completed":
        raise RuntimeError(f"run {run_id} did not complete after its event: {ended.text}")
    return elapsed_ms
