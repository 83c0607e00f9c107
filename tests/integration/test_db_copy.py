"""``flowgate db copy``: a SQLite store moves to PostgreSQL; waiting runs keep waiting there."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import simple_workflow

FLOWGATE = str(Path(sys.executable).parent / "flowgate")


def _copy(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWGATE, "db", "copy", "--to", target],
        env={**os.environ, "FLOWGATE_DATABASE_URL": source},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _settings(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=url, admin_key=ADMIN_KEY, workers=2, max_wait_secs=10, data_dir=tmp_path,
        secret_key="copy-test", log_level="error", log_format="json",
    )  # fmt: skip


async def test_db_copy_moves_runs_keys_and_waits(postgres_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'source.db'}"
    sleeper = {
        "id": "wf_nap",
        "name": "nap",
        "status": "active",
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": 2}},
            {"id": "done", "type": "transform", "config": {"mapping": {"woke": True}}},
        ],
    }
    with ThreadedServer(create_app(_settings(sqlite_url, tmp_path))) as source:
        async with httpx.AsyncClient(
            base_url=source.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as client:
            await client.post("/api/v1/workflows", json=simple_workflow("wf_a"))
            await client.post("/api/v1/workflows", json=sleeper)
            done = await client.post(
                "/api/v1/workflows/wf_a/run", json={"input": {"n": 1}}, headers={"x-api-wait": "5"}
            )
            key = await client.post("/api/v1/keys", json={"name": "k", "scopes": ["runs:read"]})
            waiting = (await client.post("/api/v1/workflows/wf_nap/run")).json()["data"]["runId"]
            await client.get(f"/api/v1/runs/{waiting}", params={"waitSecs": 0.5})

    copied = await asyncio.to_thread(_copy, sqlite_url, postgres_url)
    again = await asyncio.to_thread(_copy, sqlite_url, postgres_url)

    assert copied.returncode == 0, copied.stderr
    assert "copy verified" in copied.stdout
    assert again.returncode == 1
    with ThreadedServer(create_app(_settings(postgres_url, tmp_path))) as target:
        async with httpx.AsyncClient(base_url=target.url, timeout=30) as client:
            reader = {"x-api-key": key.json()["data"]["key"]}
            old = await client.get(f"/api/v1/runs/{done.json()['data']['id']}", headers=reader)
            resumed = await client.get(
                f"/api/v1/runs/{waiting}", params={"waitSecs": 10}, headers=reader
            )
    assert old.json()["data"]["output"] == {"n": 1}
    assert resumed.json()["data"]["status"] == "completed"
    assert resumed.json()["data"]["output"] == {"woke": True}
