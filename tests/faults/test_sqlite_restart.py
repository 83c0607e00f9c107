"""``flowgate serve`` on SQLite killed with SIGKILL mid-load and started again: every run it
accepted completes, and no committed step is called again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import targets
from tests.conftest import ThreadedServer, wait_until
from tests.pg import free_port

FLOWGATE = str(Path(sys.executable).parent / "flowgate")
KEY = "fgk_fault_test_key_0123456789abcdef"
RUNS = 60


@pytest.fixture
def target() -> Iterator[str]:
    targets.CALLS.clear()
    with ThreadedServer(targets.app) as running:
        yield running.url


def _serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWGATE_DATABASE_URL": f"sqlite:///{db}",
        "FLOWGATE_PORT": str(port),
        "FLOWGATE_ADMIN_KEY": KEY,
        "FLOWGATE_WORKERS": "4",
        "FLOWGATE_LEASE_SECS": "1.5",
        "FLOWGATE_HTTP_ALLOW_PRIVATE": "1",
        "FLOWGATE_LOG_LEVEL": "error",
    }
    return subprocess.Popen(
        [FLOWGATE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _healthy(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_killed_sqlite_server_loses_no_accepted_run(tmp_path: Path, target: str) -> None:
    db, port = tmp_path / "fault.db", free_port()
    steps = [
        {"id": f"s{i}", "type": "http",
         "config": {"method": "POST", "url": f"{target}/count",
                    "query": {"run": "{{run.id}}", "step": f"s{i}"}}}
        for i in range(3)
    ] + [{"id": "nap", "type": "sleep", "config": {"seconds": 0.5}}]  # fmt: skip
    server = _serve(db, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY}, timeout=30
        ) as client:
            await wait_until(lambda: _healthy(client), timeout=60, interval=0.2)
            workflow = {"id": "wf_f", "name": "f", "status": "active", "steps": steps}
            assert (await client.post("/api/v1/workflows", json=workflow)).status_code == 201
            accepted = [
                (await client.post("/api/v1/workflows/wf_f/run")).json()["data"]["runId"]
                for _ in range(RUNS)
            ]
            server.send_signal(signal.SIGKILL)
            server.wait()
            server = _serve(db, port)
            await wait_until(lambda: _healthy(client), timeout=60, interval=0.2)

            async def all_completed() -> bool:
                page = await client.get(
                    "/api/v1/runs", params={"status": "completed", "limit": 200}
                )
                return {r["id"] for r in page.json()["data"]} >= set(accepted)

            await wait_until(all_completed, timeout=60, interval=0.3)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()

    calls = Counter((run, step) for run, step, _, _ in targets.CALLS)
    assert {run for run, _ in calls} == set(accepted)
    assert all(calls[(run, f"s{i}")] >= 1 for run in accepted for i in range(3))
