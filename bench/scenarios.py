"""The cases of issue 12 (DESIGN §10), in run order: references first, on an idle machine.

A new case is a function here:

    @scenario("S9", "what it measures")
    def s9(bench: Bench) -> list[Row]:
        fg = bench.flowgate()
        ...
        return [bench.repeat(lambda: Row(key="S9", label="…", rate=…, p50_ms=…))]

Each case warms up, then measures ``BENCH_REPEATS`` (3) times; its row holds the medians.
``report.TARGETS`` says what each row is compared with and the issue's target.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import load_wrk, procs, targets
from bench.core import (
    BENCH_WORKFLOW,
    BENCH_WORKFLOW_ID,
    JSON_HEADERS,
    RUN_BODY,
    Bench,
    Row,
    scenario,
)
from bench.load import LoadResult, LoadSpec, measure, percentile, warm_up
from bench.refapps import POSTGRES_URL_ENV, SQLITE_PATH_ENV

WAIT_HEADERS = {"x-api-wait": "true"}


def _run_url(base_url: str, workflow_id: str = BENCH_WORKFLOW_ID) -> str:
    return f"{base_url}/api/v1/workflows/{workflow_id}/run"


def _load_case(bench: Bench, key: str, label: str, spec: LoadSpec, *, note: str = "") -> Row:
    """Warm up, then ``spec`` ``repeats`` times: the median row."""
    warm_up(spec)
    return bench.repeat(lambda: Row.from_load(key, label, bench.load(spec)), note=note)


# --- R: the references --------------------------------------------------------------------


@scenario("R1", "bare FastAPI POST → 201 on uvicorn: 64 connections, then 1 client")
def r1(bench: Bench) -> list[Row]:
    with targets.reference_server("bench.refapps:bare_app", bench.workdir) as url:
        many = bench.spec(url + "/run", headers=JSON_HEADERS, body=RUN_BODY)
        one = bench.spec(url + "/run", headers=JSON_HEADERS, body=RUN_BODY, connections=1)
        return [
            _load_case(bench, "R1", "bare FastAPI 201", many),
            _load_case(bench, "R1.1c", "bare FastAPI 201, 1 client", one),
        ]


@scenario("LG", "the asyncio load generator against wrk, both on R1 (64 connections)")
def load_generators(bench: Bench) -> list[Row]:
    if not load_wrk.available():
        print("  skipped: wrk is not installed (make bench-tools)")
        return []
    with targets.reference_server("bench.refapps:bare_app", bench.workdir) as url:
        spec = bench.spec(url + "/run", headers=JSON_HEADERS, body=RUN_BODY)
        warm_up(spec)
        rows = {
            generator: bench.repeat(
                lambda g=generator: Row.from_load("LG", f"R1 by {g}", measure(spec, generator=g))
            )
            for generator in ("wrk", "python")
        }
    python, wrk = rows["python"], rows["wrk"]
    agreement = python.rate / wrk.rate if wrk.rate else 0.0
    return [
        Row(
            key="LG",
            label="asyncio client / wrk on R1",
            rate=agreement,
            unit="x",
            p50_ms=python.p50_ms,
            p99_ms=python.p99_ms,
            note=f"asyncio {python.rate:,.0f} req/s, wrk {wrk.rate:,.0f} req/s "
            f"(wrk p50 {wrk.p50_ms or 0:.2f} ms)",
            details={"python": python.details, "wrk": wrk.details},
        )
    ]


@scenario("R2", "bare FastAPI endpoint: one SQLite insert + commit per request")
def r2(bench: Bench) -> list[Row]:
    env = {SQLITE_PATH_ENV: str(bench.workdir / "reference.db")}
    with targets.reference_server("bench.refapps:sqlite_app", bench.workdir, **env) as url:
        spec = bench.spec(url + "/run", headers=JSON_HEADERS, body=RUN_BODY)
        return [_load_case(bench, "R2", "bare SQLite insert+commit", spec)]


@scenario("R3", "bare FastAPI endpoint: one asyncpg INSERT per request (pool of 10)")
def r3(bench: Bench) -> list[Row]:
    env = {POSTGRES_URL_ENV: targets.create_database(bench.postgres(), "reference")}
    with targets.reference_server("bench.refapps:postgres_app", bench.workdir, **env) as url:
        spec = bench.spec(url + "/run", headers=JSON_HEADERS, body=RUN_BODY)
        return [_load_case(bench, "R3", "bare asyncpg insert", spec)]


# --- T: the durable trigger ---------------------------------------------------------------


@contextlib.contextmanager
def _fresh_flowgate(
    bench: Bench, name: str, *, workers: int = targets.FLOWGATE_WORKERS
) -> Iterator[targets.Flowgate]:
    """A flowgate of its own on a new SQLite file, with ``wf_bench``."""
    url = f"sqlite:///{bench.workdir / f'{name}.db'}"
    with targets.flowgate_server(bench.workdir, database_url=url, workers=workers, name=name) as fg:
        fg.create_workflow(BENCH_WORKFLOW)
        yield fg


def _trigger_spec(bench: Bench, fg: targets.Flowgate) -> LoadSpec:
    return bench.spec(
        _run_url(fg.base_url),
        headers={**JSON_HEADERS, **fg.auth},
        body=RUN_BODY,
        idempotency_half=True,
    )


@scenario("T1", "durable POST …/run (schema, key on half), API only (FLOWGATE_WORKERS=0), SQLite")
def t1(bench: Bench) -> list[Row]:
    with _fresh_flowgate(bench, "t1", workers=0) as fg:
        return [_load_case(bench, "T1", "trigger, API only, SQLite", _trigger_spec(bench, fg))]


@scenario("T2", "the same with the in-process workers running the runs (SQLite)")
def t2(bench: Bench) -> list[Row]:
    with _fresh_flowgate(bench, "t2") as fg:
        row = _load_case(bench, "T2", "trigger + workers, SQLite", _trigger_spec(bench, fg))
        return [row]


@scenario("T3", "the same on PostgreSQL, 2 API processes (workers=0), half the connections each")
def t3(bench: Bench) -> list[Row]:
    url = targets.create_database(bench.postgres(), "t3")
    with contextlib.ExitStack() as stack:
        servers = []
        admin_key = "fgk_" + secrets.token_urlsafe(24)  # one bootstrap key for both processes
        for index in range(2):  # one after the other: the first one migrates the database
            server = targets.flowgate_server(
                bench.workdir, database_url=url, workers=0, admin_key=admin_key, name=f"t3-{index}"
            )
            servers.append(stack.enter_context(server))
        servers[0].create_workflow(BENCH_WORKFLOW)
        half = max(1, bench.config.connections // 2)
        specs = [
            LoadSpec(**{**_spec_fields(_trigger_spec(bench, fg)), "connections": half})
            for fg in servers
        ]
        for spec in specs:
            warm_up(spec)

        def both() -> Row:
            with ThreadPoolExecutor(len(specs)) as pool:
                results = list(pool.map(bench.load, specs))
            return _summed("T3", "trigger, PostgreSQL, 2 API procs", results)

        return [bench.repeat(both)]


def _spec_fields(spec: LoadSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def _summed(key: str, label: str, results: list[LoadResult]) -> Row:
    """Loads run side by side: their rates add up; the slower server's percentiles count."""
    p50s = [r.p50_ms for r in results if r.p50_ms is not None]
    p99s = [r.p99_ms for r in results if r.p99_ms is not None]
    return Row(
        key=key,
        label=label,
        rate=sum(r.rate for r in results),
        p50_ms=max(p50s) if p50s else None,
        p99_ms=max(p99s) if p99s else None,
        errors=sum(r.errors for r in results),
        count=sum(r.ok for r in results),
        note="rates summed over the processes; the slower one's p50/p99",
        details={"loads": [r.as_dict() for r in results]},
    )


# --- E: end to end ------------------------------------------------------------------------


@scenario("E1", "end-to-end runs/s of the 3-step workflow: BENCH_E1_RUNS triggers from 64 clients")
def e1(bench: Bench) -> list[Row]:
    runs = bench.config.e1_runs
    with _fresh_flowgate(bench, "e1") as fg:
        warm_up(_trigger_spec(bench, fg))
        fg.wait_idle(BENCH_WORKFLOW_ID, timeout=bench.config.drain_secs)
        counter = iter(range(1_000_000))

        def once() -> Row:
            workflow_id = f"wf_bench_e1_{next(counter)}"
            fg.create_workflow({**BENCH_WORKFLOW, "id": workflow_id, "name": workflow_id})
            spec = LoadSpec(
                **{
                    **_spec_fields(_trigger_spec(bench, fg)),
                    "url": _run_url(fg.base_url, workflow_id),
                },
            )
            spec = LoadSpec(**{**_spec_fields(spec), "max_requests": runs, "seconds": 3600.0})
            load = measure(spec, generator="python")
            timeout = bench.config.drain_secs + runs / 20
            if fg.wait_idle(workflow_id, timeout=timeout) is None:
                raise RuntimeError(f"E1: runs still unfinished {timeout:.0f} s after the load")
            return _span_row(
                "E1", "end-to-end, SQLite, 1 process", bench.workdir / "e1.db", workflow_id, load
            )

        return [
            bench.repeat(once, note=f"{runs:,} runs per repetition, first trigger → last completed")
        ]


def _span_row(key: str, label: str, db: Path, workflow_id: str, load: LoadResult) -> Row:
    """Runs/s from the first run's creation to the last one's completion, read from SQLite."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        done, first, last, failed = conn.execute(
            "SELECT sum(status = 'completed'), min(created_at), max(completed_at), "
            "sum(status != 'completed') FROM runs WHERE workflow_id = ?",
            (workflow_id,),
        ).fetchone()
    span = max((last - first) / 1000, 1e-3)
    return Row(
        key=key,
        label=label,
        rate=done / span,
        unit="runs/s",
        errors=int(failed or 0) + load.errors,
        count=int(done),
        details={"span_secs": span, "trigger_load": load.as_dict()},
    )


@scenario("E2", "PostgreSQL: 1, then 2 `flowgate worker` processes drain a pre-enqueued backlog")
def e2(bench: Bench) -> list[Row]:
    backlog = bench.config.drain_backlog
    url = targets.create_database(bench.postgres(), "drain")
    counter = iter(range(1_000_000))
    rows = []
    with targets.flowgate_server(bench.workdir, database_url=url, workers=0, name="e2") as fg:
        for workers in (1, 2):

            def once(workers: int = workers) -> Row:
                workflow_id = f"wf_bench_e2_{next(counter)}"
                fg.create_workflow({**BENCH_WORKFLOW, "id": workflow_id, "name": workflow_id})
                fg.enqueue(workflow_id, backlog)
                with targets.worker_processes(bench.workdir, url, count=workers):
                    if fg.wait_idle(workflow_id, timeout=bench.config.drain_secs * 3) is None:
                        raise RuntimeError(f"E2: {workers} worker(s) did not drain the backlog")
                return _pg_span_row(
                    f"E2.{workers}", f"drain, PostgreSQL, {workers} worker proc", url, workflow_id
                )

            rows.append(
                bench.repeat(once, note=f"{backlog:,} runs, first started → last completed")
            )
    return rows


def _pg_span_row(key: str, label: str, url: str, workflow_id: str) -> Row:
    import asyncio

    import asyncpg

    async def span() -> tuple[int, int, int]:
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'completed'), min(started_at), "
                "max(completed_at) FROM runs WHERE workflow_id = $1",
                workflow_id,
            )
        finally:
            await conn.close()
        return int(row[0]), int(row[1]), int(row[2])

    done, first, last = asyncio.run(span())
    secs = max((last - first) / 1000, 1e-3)
    return Row(
        key=key,
        label=label,
        rate=done / secs,
        unit="runs/s",
        count=done,
        details={"span_secs": secs},
    )


# --- S: latency, events, webhooks, dialects (the shared SQLite server, 16 worker slots) ---------


@scenario("S1", "x-api-wait: true on the 3-step workflow, 1 and 16 clients (SQLite)")
def s1(bench: Bench) -> list[Row]:
    fg = bench.flowgate()
    headers = {**JSON_HEADERS, **fg.auth, **WAIT_HEADERS}
    rows = []
    for clients in (1, 16):
        spec = bench.spec(
            _run_url(fg.base_url), headers=headers, body=RUN_BODY, connections=clients
        )
        rows.append(_load_case(bench, f"S1.{clients}c", f"x-api-wait, {clients} client(s)", spec))
    return rows


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
EVENT_SAMPLES = 100
EVENT_WARM_UP = 20


@scenario("S2", "event send → run completed: a wait_for_event then one transform (SQLite, PG)")
def s2(bench: Bench) -> list[Row]:
    rows = [_resume_rows(bench, bench.flowgate(), "S2", "sqlite")]
    url = targets.create_database(bench.postgres(), "events")
    with targets.flowgate_server(bench.workdir, database_url=url, name="s2-pg") as fg:
        rows.append(_resume_rows(bench, fg, "S2.pg", "postgresql"))
    return rows


def _resume_rows(bench: Bench, fg: targets.Flowgate, key: str, database: str) -> Row:
    """Start runs that wait, one at a time; for each, once its trigger waits, time a send until
    a long-poll of the run answers ``completed``."""
    fg.create_workflow(EVENT_WORKFLOW)
    for n in range(EVENT_WARM_UP):
        _resume_once(fg, f"{database}-warm-{n}")
    counter = iter(range(1_000_000))

    def once() -> Row:
        rep = next(counter)
        samples = sorted(_resume_once(fg, f"{database}-{rep}-{n}") for n in range(EVENT_SAMPLES))
        return Row(
            key=key,
            label=f"event send→completed, {database}",
            rate=1000 * len(samples) / sum(samples),
            unit="runs/s",
            p50_ms=percentile(samples, 50),
            p99_ms=percentile(samples, 99),
            count=len(samples),
        )

    return bench.repeat(once, note=f"{EVENT_SAMPLES} sends per repetition, one at a time")


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


HOOK_WORKFLOW_ID = "wf_bench_hook"
HOOK_BODY = b'{"event": "bench", "n": 1}'


@scenario("S3", "signed webhook (/hooks/…, X-Flowgate-Signature) req/s, 64 connections (SQLite)")
def s3(bench: Bench) -> list[Row]:
    with _fresh_flowgate(bench, "s3") as fg:
        unvalidated = {k: v for k, v in BENCH_WORKFLOW.items() if k != "inputSchema"}
        fg.create_workflow({**unvalidated, "id": HOOK_WORKFLOW_ID, "name": "hook"})
        url, secret = fg.create_webhook(HOOK_WORKFLOW_ID)
        signature = hmac.new(secret.encode(), HOOK_BODY, hashlib.sha256).hexdigest()
        headers = {**JSON_HEADERS, "x-flowgate-signature": f"sha256={signature}"}
        spec = bench.spec(url, headers=headers, body=HOOK_BODY)
        return [_load_case(bench, "S3", "signed webhook", spec)]


@scenario("S4", "Pinkfish sync call: POST /ext/triggers/{id} with x-api-wait: true, 1 client")
def s4(bench: Bench) -> list[Row]:
    fg = bench.flowgate()
    headers = {**JSON_HEADERS, "X-API-KEY": fg.admin_key, **WAIT_HEADERS}
    url = f"{fg.base_url}/ext/triggers/{BENCH_WORKFLOW_ID}"
    spec = bench.spec(url, headers=headers, body=b'{"n": 1}', connections=1)
    return [_load_case(bench, "S4", "Pinkfish sync call, 1 client", spec)]


# --- M: memory and a big runs list --------------------------------------------------------


@scenario("M1", "serve's peak RSS after BENCH_M1_RUNS runs; GET /runs?limit=50 over 1,000,000 runs")
def m1(bench: Bench) -> list[Row]:
    runs, seeded = bench.config.m1_runs, bench.config.m1_seeded
    db = bench.workdir / "m1.db"
    with _fresh_flowgate(bench, "m1") as fg:
        fg.enqueue(BENCH_WORKFLOW_ID, runs)
        if fg.wait_idle(BENCH_WORKFLOW_ID, timeout=bench.config.drain_secs + runs / 20) is None:
            raise RuntimeError(f"M1: {runs:,} runs did not finish")
        rss = procs.peak_rss_mb(fg.pid)
        admin_key = fg.admin_key
    added = _seed_runs(db, seeded - runs)
    rows = [
        Row(
            key="M1.rss",
            label=f"serve peak RSS after {runs:,} runs",
            rate=rss,
            unit="MB",
            count=runs,
            note="VmHWM of `flowgate serve` (16 worker slots); measured once",
        )
    ]
    with targets.flowgate_server(
        bench.workdir, database_url=f"sqlite:///{db}", admin_key=admin_key, name="m1-list"
    ) as fg:
        spec = bench.spec(
            f"{fg.base_url}/api/v1/runs?limit=50", headers=fg.auth, method="GET", connections=1
        )
        rows.append(
            _load_case(
                bench,
                "M1.list",
                f"GET /runs?limit=50, {runs + added:,} runs",
                spec,
                note=f"{added:,} runs seeded with one INSERT … SELECT",
            )
        )
    return rows


def _seed_runs(db: Path, count: int) -> int:
    """``count`` copies of the newest run (older ``created_at``, ids ``run_seed…``), in bulk."""
    if count <= 0:
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        exprs = {
            "id": "'run_seed' || printf('%09d', seq.n)",
            "created_at": "t.created_at - seq.n",
        }
        select = ", ".join(exprs.get(c, f"t.{c}") for c in columns)
        conn.execute(
            f"INSERT INTO runs ({', '.join(columns)}) "  # noqa: S608  # column names from the schema
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?) "
            f"SELECT {select} FROM seq, "
            "(SELECT * FROM runs ORDER BY created_at DESC LIMIT 1) AS t",
            (count,),
        )
        conn.commit()
    return count


# --- C: cold start ------------------------------------------------------------------------


@scenario("C1", "cold start: `flowgate serve` launched → first answered trigger (migrated SQLite)")
def c1(bench: Bench) -> list[Row]:
    db_url = f"sqlite:///{bench.workdir / 'c1.db'}"
    with targets.flowgate_server(bench.workdir, database_url=db_url, name="c1-setup") as fg:
        fg.create_workflow(BENCH_WORKFLOW)
        admin_key = fg.admin_key
    env = targets.flowgate_env(
        bench.workdir, database_url=db_url, workers=targets.FLOWGATE_WORKERS, admin_key=admin_key
    )

    def once() -> Row:
        port = procs.free_port()
        url = f"{_run_url(f'http://127.0.0.1:{port}')}"
        began = time.perf_counter()
        proc = subprocess.Popen(
            [*targets.flowgate_command(), "serve"],
            env=env | {"FLOWGATE_PORT": str(port)},
            cwd=procs.REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            elapsed = _first_answer(url, admin_key, proc, began)
        finally:
            procs.stop(proc)
        return Row(key="C1", label="cold start → first trigger", rate=elapsed, unit="s")

    return [bench.repeat(once, note="process launch to the first 201 of POST …/run")]


def _first_answer(url: str, admin_key: str, proc: subprocess.Popen[bytes], began: float) -> float:
    headers = {**JSON_HEADERS, "x-api-key": admin_key}
    with httpx.Client(timeout=30.0) as client:
        while time.perf_counter() - began < procs.HEALTH_DEADLINE_SECS:
            if proc.poll() is not None:
                raise RuntimeError(f"flowgate serve exited with {proc.returncode}")
            try:
                response = client.post(url, headers=headers, content=RUN_BODY)
            except httpx.TransportError:
                time.sleep(0.005)
                continue
            if response.status_code == 201:
                return time.perf_counter() - began
            raise RuntimeError(f"first trigger → {response.status_code}: {response.text[:300]}")
    raise RuntimeError("flowgate serve did not answer within the health deadline")


# --- P: the peers (make bench PEERS=1) ----------------------------------------------------

PEERS_PYTHON = procs.REPO / ".venv-peers" / "bin" / "python"


@scenario("P1", "Celery + Redis (no persistence): the same 3-step chain, BENCH_E1_RUNS chains")
def p1(bench: Bench) -> list[Row]:
    if not PEERS_PYTHON.is_file():
        raise RuntimeError(f"{PEERS_PYTHON} is missing: run `make bench-peers`")
    argv = [
        str(PEERS_PYTHON), "-m", "bench.peer_celery",
        "--runs", str(bench.config.e1_runs), "--repeats", str(bench.config.repeats),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=procs.REPO, capture_output=True, text=True, timeout=1800, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"peer_celery exited with {done.returncode}: {done.stderr[-2000:]}")
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    return [
        Row(
            key="P1",
            label="Celery+Redis 3-task chains",
            rate=figures["chains_per_sec"],
            unit="runs/s",
            count=figures["chains"],
            note=f"median of {figures['chains_per_sec_all']}; {figures['chains']:,} chains "
            f"per repetition",
        ),
        Row(
            key="P1.rt",
            label="Celery+Redis 1-task round trip",
            rate=figures["task_rt_rate"],
            unit="tasks/s",
            p50_ms=figures["task_rt_p50_ms"],
            p99_ms=figures["task_rt_p99_ms"],
            count=figures["task_rt_samples"],
            note="apply_async(...).get() one at a time, 1 client",
        ),
    ]
