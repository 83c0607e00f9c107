"""PostgreSQL restarted under load: processes reconnect and every accepted run completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.pg import PostgresCluster

RUNS = 100


async def test_runs_survive_a_database_restart(
    postgres: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=postgres_url, admin_key=ADMIN_KEY, workers=4, lease_secs=2,
        poll_interval_secs=0.5, data_dir=tmp_path, log_level="error", log_format="json",
    )  # fmt: skip
    steps = [
        {"id": "a", "type": "transform", "config": {"mapping": "{{input.n}}"}},
        {"id": "nap", "type": "sleep", "config": {"seconds": 0.3}},
        {"id": "b", "type": "transform", "config": {"mapping": "{{steps.a.output}}"}},
    ]
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as client:
            workflow = {"id": "wf_pg", "name": "pg", "status": "active", "steps": steps}
            assert (await client.post("/api/v1/workflows", json=workflow)).status_code == 201
            batch = await client.post(
                "/api/v1/workflows/wf_pg/run/batch",
                json={"runs": [{"input": {"n": n}} for n in range(RUNS)]},
            )
            accepted = [item["data"]["runId"] for item in batch.json()["data"]]
            await asyncio.to_thread(postgres.restart)

            async def all_completed() -> bool:
                try:
                    page = await client.get(
                        "/api/v1/runs",
                        params={"workflowId": "wf_pg", "status": "completed", "limit": 200},
                    )
                except httpx.HTTPError:
                    return False
                return page.status_code == 200 and len(page.json()["data"]) == RUNS

            await wait_until(all_completed, timeout=60, interval=0.5)
    assert len(accepted) == RUNS
