"""How long each page of the monitor takes with a busy project (not a test).

Seeds a fresh SQLite database with 100,000 runs spread over the last 24 hours (20 workflows, a
mix of statuses) and 1,000 waiting event triggers, by bulk SQL inserts; starts the real server
(uvicorn on loopback, no workers), creates the 20 workflows through the API, signs in, and times
every page over HTTP (the overview, the runs list unfiltered and filtered, a run, the workflows
list and a workflow, the events). Prints min, median and p95 in milliseconds.
``--database-url postgresql://…`` (an empty database) measures PostgreSQL instead.

    .venv/bin/python -m bench.ui_pages [--runs 100000] [--requests 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowgate import clock
from flowgate.api.app import create_app
from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store import tables as t
from flowgate.store.migrate import upgrade_database

ADMIN_KEY = "fgk_bench_ui_pages_0123456789abcdef"
PROJECT = "prj_default"
STATUSES = (
    ["completed"] * 80 + ["failed"] * 10 + ["timed_out"] * 3 + ["canceled"] * 5 + ["waiting"] * 2
)
CHUNK = 5_000
WORKFLOWS = 20
#: Every page, and the runs list with each kind of filter (a run in the middle of the day).
PAGES = (
    "/ui/overview",
    "/ui/runs",
    "/ui/runs?status=failed",
    "/ui/runs?workflowId=wf_bench_07",
    "/ui/runs?input=input.n+%3D+50000",
    "/ui/runs/table",
    "/ui/runs/run_bench00050000",
    "/ui/workflows",
    "/ui/workflows/wf_bench_07",
    "/ui/events",
)


def _workflow(number: int) -> dict[str, Any]:
    return {
        "id": f"wf_bench_{number:02d}",
        "name": f"bench {number}",
        "status": "active",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [{"id": "echo", "type": "transform", "config": {"mapping": {"n": "{{input.n}}"}}}],
    }


def _runs(count: int, now_ms: int, rng: random.Random) -> list[dict[str, Any]]:
    day_ms = 86_400_000
    rows = []
    for n in range(count):
        created = now_ms - rng.randrange(day_ms)
        status = rng.choice(STATUSES)
        started = created + rng.randrange(2_000)
        ended = status not in ("waiting",)
        rows.append(
            {
                "id": f"run_bench{n:08d}",
                "project_id": PROJECT,
                "workflow_id": f"wf_bench_{n % WORKFLOWS:02d}",
                "workflow_version": 1,
                "status": status,
                "input": {"n": n},
                "env": {},
                "source": "api",
                "priority": 0,
                "lease_epoch": 0,
                "crash_count": 0,
                "created_at": clock.from_millis(created),
                "started_at": clock.from_millis(started),
                "completed_at": clock.from_millis(started + rng.randrange(50, 60_000))
                if ended
                else None,
            }
        )
    # As a live server writes them: oldest first, so table order follows creation time.
    rows.sort(key=lambda row: row["created_at"])
    return rows


def _waits(count: int, now_ms: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        requested = clock.from_millis(now_ms - n * 60_000)
        rows.append(
            {
                "project_id": PROJECT,
                "id": f"evt_bench{n:08d}",
                "event_key": f"bench-approval-{n}",
                "source_type": "job_run",
                "job_run_id": f"job_bench{n:08d}",
                "any_of": False,
                "status": "waiting",
                "request_payload": {"n": n},
                "timeout_secs": 86_400.0 * 7,
                "requested_at": requested,
                "expires_at": requested + timedelta(days=7),
            }
        )
    return rows


async def seed(database_url: str, runs: int) -> float:
    """Migrate and fill the database; returns the seconds the inserts took."""
    store = open_store(database_url)
    try:
        await upgrade_database(store)
        now_ms = clock.to_millis(clock.Clock().now())
        rng = random.Random(7)
        rows = _runs(runs, now_ms, rng)
        began = time.perf_counter()
        await store.ensure_project(
            {
                "id": PROJECT,
                "org_id": "org_default",
                "name": "Default",
                "run_quota_per_day": None,
                "created_at": clock.from_millis(now_ms - 2 * 86_400_000),
                "event_buffer_secs": None,
            }
        )
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            await store.write(lambda conn, chunk=chunk: conn.execute(t.runs.insert(), chunk))
        waits = _waits(1_000, now_ms)
        await store.write(lambda conn: conn.execute(t.event_triggers.insert(), waits))
        if not store.is_sqlite:
            # What autovacuum does within a minute of a bulk load: without statistics the
            # planner guesses a handful of rows and sorts instead of hashing.
            await store.write(lambda conn: conn.exec_driver_sql("ANALYZE runs"))
        return time.perf_counter() - began
    finally:
        await store.close()


class _Server:
    """uvicorn on 127.0.0.1, port 0, in a thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def time_page(http: httpx.Client, path: str, requests: int) -> tuple[float, list[float]]:
    """The first request (templates compiled, caches filled) and the following ones, in ms."""
    began = time.perf_counter()
    http.get(path).raise_for_status()
    first = (time.perf_counter() - began) * 1000
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return first, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        seconds = asyncio.run(seed(url, args.runs))
        print(f"seeded {args.runs:,} runs and 1,000 waits in {seconds:.1f} s")
        settings = Settings(
            database_url=url,
            admin_key=ADMIN_KEY,
            workers=0,
            data_dir=Path(tmp) / "data",
            log_level="warning",
            log_format="json",
        )
        with _Server(create_app(settings)) as base, httpx.Client(base_url=base) as http:
            signed_in = http.post("/ui/login", data={"key": ADMIN_KEY})
            if signed_in.status_code != 303:
                raise RuntimeError(f"sign-in failed: {signed_in.status_code}")
            for workflow in range(WORKFLOWS):
                created = http.post(
                    "/api/v1/workflows",
                    json=_workflow(workflow),
                    headers={"x-api-key": ADMIN_KEY},
                )
                created.raise_for_status()
            for path in PAGES:
                first, times = time_page(http, path, args.requests)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(
                    f"{path:38} first {first:6.1f} ms  min {times[0]:6.1f} ms"
                    f"  median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms"
                )


if __name__ == "__main__":
    main()
