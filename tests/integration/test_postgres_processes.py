"""Several processes on one PostgreSQL database: notifications, not polling, connect them.

Each "process" here is a full server (its own services, store, notifier and listener) on its
own event loop; they share nothing but the database, as separate processes would.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import simple_workflow

SLOW_POLL = 60.0  # far longer than any wait below: only a notification can wake anything


def _settings(url: str, tmp_path: Path, *, workers: int) -> Settings:
    return Settings(
        database_url=url,
        admin_key=ADMIN_KEY,
        workers=workers,
        poll_interval_secs=SLOW_POLL,
        max_wait_secs=10,
        data_dir=tmp_path,
        log_level="warning",
        log_format="json",
    )


async def test_api_process_learns_of_run_finished_by_worker_process(
    postgres_url: str, tmp_path: Path
) -> None:
    api_only = ThreadedServer(create_app(_settings(postgres_url, tmp_path, workers=0)))
    worker = ThreadedServer(create_app(_settings(postgres_url, tmp_path, workers=2)))
    with api_only, worker:
        async with httpx.AsyncClient(
            base_url=api_only.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as client:
            created = await client.post("/api/v1/workflows", json=simple_workflow("wf_x"))
            assert created.status_code == 201

            response = await client.post(
                "/api/v1/workflows/wf_x/run",
                json={"input": {"n": 3}},
                headers={"x-api-wait": "true"},
            )

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "completed"
    assert response.json()["data"]["output"] == {"n": 3}
