"""Workers killed with SIGKILL at random moments: every accepted run completes, and no step whose
outcome was committed is called again (DESIGN §6). PostgreSQL, real worker processes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store.base import Page, RunFilter, StepRunRow
from tests import targets
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until

FLOWGATE = str(Path(sys.executable).parent / "flowgate")
RUNS = 200
STEPS = 5
KILLS = 6
WORKER_SLOTS = 8


@pytest.fixture
def target() -> Iterator[str]:
    targets.CALLS.clear()
    with ThreadedServer(targets.app) as running:
        yield running.url


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWGATE_DATABASE_URL": url,
        "FLOWGATE_WORKERS": str(WORKER_SLOTS),
        "FLOWGATE_LEASE_SECS": "1.5",
        "FLOWGATE_POLL_INTERVAL_SECS": "0.5",
        "FLOWGATE_HTTP_ALLOW_PRIVATE": "1",
        "FLOWGATE_LOG_LEVEL": "error",
    }
    return subprocess.Popen(
        [FLOWGATE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _workflow(target: str) -> dict:
    steps = [
        {
            "id": f"s{i}",
            "type": "http",
            "config": {
                "method": "POST",
                "url": f"{target}/count",
                "query": {"run": "{{run.id}}", "step": f"s{i}"},
            },
        }
        for i in range(STEPS)
    ]
    return {"id": "wf_chaos", "name": "chaos", "status": "active", "steps": steps}


async def _attempts(url: str) -> dict[tuple[str, str], list[StepRunRow]]:
    """(run, step) → its attempts in order, read from the store."""
    store = open_store(url)
    try:
        attempts: dict[tuple[str, str], list[StepRunRow]] = defaultdict(list)
        for run in await store.list_runs("prj_default", RunFilter(), Page(limit=RUNS + 10)):
            for row in await store.list_step_runs(run["id"]):
                attempts[(run["id"], row["step_id"])].append(row)
        return attempts
    finally:
        await store.close()


def _outcome(row: StepRunRow) -> str:
    error = row["error"]
    return error["code"] if isinstance(error, dict) else row["status"]


async def test_killed_workers_lose_no_run_and_repeat_no_committed_step(
    postgres_url: str, target: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=postgres_url, admin_key=ADMIN_KEY, workers=0, data_dir=tmp_path,
        log_level="error", log_format="json",
    )  # fmt: skip
    workers = [_start_worker(postgres_url) for _ in range(2)]
    try:
        with ThreadedServer(create_app(settings)) as api:
            async with httpx.AsyncClient(
                base_url=api.url, headers={"x-api-key": ADMIN_KEY}, timeout=60
            ) as client:
                assert (
                    await client.post("/api/v1/workflows", json=_workflow(target))
                ).status_code == 201
                batch = await client.post(
                    "/api/v1/workflows/wf_chaos/run/batch", json={"runs": [{}] * RUNS}
                )
                run_ids = [item["data"]["runId"] for item in batch.json()["data"]]
                assert len(run_ids) == RUNS
                rng = random.Random(7)
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.2, 0.8))  # fault injection timing
                    victim = workers.pop(rng.randrange(len(workers)))
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    workers.append(_start_worker(postgres_url))

                async def all_done() -> bool:
                    done = await client.get(
                        "/api/v1/runs",
                        params={"workflowId": "wf_chaos", "status": "completed", "limit": 200},
                    )
                    return len(done.json()["data"]) == RUNS

                await wait_until(all_done, timeout=90, interval=0.5)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

    attempts = await _attempts(postgres_url)
    committed = {
        key: rows[-1]["completed_at"].timestamp()
        for key, rows in attempts.items()
        if rows[-1]["status"] == "completed" and rows[-1]["completed_at"] is not None
    }
    calls: dict[tuple[str, str], list[float]] = defaultdict(list)
    keys: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for run_id, step_id, at, idempotency_key in targets.CALLS:
        calls[(run_id, step_id)].append(at)
        keys[(run_id, step_id)].add(idempotency_key)
    assert set(committed) == {(r, f"s{i}") for r in run_ids for i in range(STEPS)}
    late = [key for key, times in calls.items() if max(times) > committed[key] + 0.001]
    duplicates = sum(len(times) - 1 for times in calls.values())
    lost = sum(len(rows) - 1 for rows in attempts.values())
    print(
        f"\nfaults: {RUNS} runs, {KILLS} kills, {len(committed)} steps committed, "
        f"{duplicates} repeated calls of uncommitted steps, {len(late)} after commit, "
        f"{lost} attempts recorded WORKER_LOST"
    )
    assert late == []
    assert duplicates <= KILLS * WORKER_SLOTS
    # At-least-once, visibly: every attempt before the last was lost with its worker and says
    # so; a receiver sees as many calls as attempts at most, all with the same key.
    for key, rows in attempts.items():
        assert [_outcome(row) for row in rows] == ["WORKER_LOST"] * (len(rows) - 1) + [
            "completed"
        ], key
        assert len(calls[key]) <= len(rows), key
        assert keys[key] == {f"{key[0]}:{key[1]}"}, key
