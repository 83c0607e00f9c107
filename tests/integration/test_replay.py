"""Replay, rerun from the failed step, and bulk cancel/replay."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from flowgate.settings import Settings
from tests import functions
from tests.integration.conftest import create_workflow, simple_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(python_modules="tests.functions")


async def _wait(client: httpx.AsyncClient, run_id: str) -> dict:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})
    return response.json()["data"]


async def test_replay_starts_new_run_with_same_input_and_version(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_r"))
    first = await client.post(
        "/api/v1/workflows/wf_r/run", json={"input": {"n": 4}}, headers={"x-api-wait": "true"}
    )
    changed = simple_workflow("wf_r")
    changed["steps"][0]["config"]["mapping"] = {"v2": True}
    await client.put("/api/v1/workflows/wf_r", json=changed)

    response = await client.post(f"/api/v1/runs/{first.json()['data']['id']}/replay")

    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"runId", "status", "workflowId", "workflowVersion"}
    assert data["workflowVersion"] == 1
    replayed = await _wait(client, data["runId"])
    assert replayed["source"] == "replay"
    assert replayed["output"] == {"n": 4}
    assert (replayed["replayOf"], replayed["rerunOf"]) == (first.json()["data"]["id"], None)


async def test_rerun_reuses_completed_steps_and_starts_at_failed(
    client: httpx.AsyncClient,
) -> None:
    functions.FLAKY.clear()
    functions.CALLS.clear()
    definition = {
        "id": "wf_rerun",
        "name": "rerun",
        "status": "active",
        "steps": [
            {"id": "first", "type": "python", "config": {"function": "add", "a": 1, "b": 2}},
            {"id": "second", "type": "python", "config": {"function": "fail_twice", "key": "r"}},
        ],
    }
    await create_workflow(client, definition)
    failed = (
        await client.post("/api/v1/workflows/wf_rerun/run", headers={"x-api-wait": "true"})
    ).json()["data"]
    assert failed["status"] == "failed"
    functions.FLAKY["r"] = 2

    response = await client.post(f"/api/v1/runs/{failed['id']}/rerun")

    assert response.status_code == 201
    rerun = await _wait(client, response.json()["data"]["runId"])
    assert rerun["status"] == "completed"
    assert rerun["source"] == "rerun"
    assert (rerun["rerunOf"], rerun["replayOf"]) == (failed["id"], None)
    assert (failed["replayOf"], failed["rerunOf"]) == (None, None)
    assert rerun["steps"][0]["output"]["sum"] == 3
    assert [call for call in functions.CALLS if call[1] == "first"] == [(failed["id"], "first")]


async def test_rerun_of_unfinished_run_returns_409(client: httpx.AsyncClient) -> None:
    steps = [{"id": "nap", "type": "sleep", "config": {"seconds": 30}}]
    await create_workflow(
        client, {"id": "wf_nap", "name": "nap", "status": "active", "steps": steps}
    )
    run_id = (await client.post("/api/v1/workflows/wf_nap/run")).json()["data"]["runId"]

    response = await client.post(f"/api/v1/runs/{run_id}/rerun")

    assert response.status_code == 409


async def test_bulk_cancel_dry_run_counts_then_cancels(client: httpx.AsyncClient) -> None:
    steps = [{"id": "nap", "type": "sleep", "config": {"seconds": 30}}]
    await create_workflow(
        client, {"id": "wf_nap", "name": "nap", "status": "active", "steps": steps}
    )
    await create_workflow(client, simple_workflow("wf_other"))
    for _ in range(3):
        await client.post("/api/v1/workflows/wf_nap/run")
    await client.post("/api/v1/workflows/wf_other/run", headers={"x-api-wait": "true"})

    dry = await client.post("/api/v1/runs/cancel", json={"workflowId": "wf_nap", "dryRun": True})
    done = await client.post("/api/v1/runs/cancel", json={"workflowId": "wf_nap"})
    after = await client.get("/api/v1/runs", params={"workflowId": "wf_nap", "status": "canceled"})

    assert dry.json()["data"] == {"matched": 3, "canceled": 0, "runIds": [], "dryRun": True}
    assert done.json()["data"]["canceled"] == 3
    assert len(after.json()["data"]) == 3


async def test_bulk_replay_replays_matching_runs(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    for n in range(2):
        await client.post(
            "/api/v1/workflows/wf_a/run", json={"input": {"n": n}}, headers={"x-api-wait": "true"}
        )

    response = await client.post(
        "/api/v1/runs/replay", json={"workflowId": "wf_a", "status": "completed"}
    )

    data = response.json()["data"]
    assert data["matched"] == 2
    assert data["replayed"] == 2
    replays = [await _wait(client, run_id) for run_id in data["runIds"]]
    assert sorted(run["output"]["n"] for run in replays) == [0, 1]
    listed = (await client.get("/api/v1/runs", params={"source": "replay"})).json()["data"]
    originals = {run["id"] for run in (await client.get("/api/v1/runs")).json()["data"]}
    assert {run["replayOf"] for run in listed} <= originals - set(data["runIds"])
    assert len({run["replayOf"] for run in listed}) == 2
