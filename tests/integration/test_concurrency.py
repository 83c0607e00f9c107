"""Concurrency limits: runs beyond a limit are queued, explain why, and start by themselves."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from flowgate.settings import Settings
from flowgate.store.sql import choose_promotions
from tests.conftest import wait_until
from tests.integration.conftest import create_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers=4, poll_interval_secs=0.2)


def _limited(workflow_id: str, concurrency: dict, seconds: float = 0.6) -> dict:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "concurrency": concurrency,
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": seconds}},
            {"id": "done", "type": "transform", "config": {"mapping": "{{input.customer}}"}},
        ],
    }


async def test_runs_over_key_limit_are_queued_then_start(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client, _limited("wf_lim", {"limit": 1, "key": "{{input.customer}}"}, seconds=0.4)
    )

    started = [
        (await client.post("/api/v1/workflows/wf_lim/run", json={"input": {"customer": c}})).json()[
            "data"
        ]
        for c in ("a", "a", "a", "b")
    ]

    assert [s["status"] for s in started] == ["pending", "queued", "queued", "pending"]
    third = (await client.get(f"/api/v1/runs/{started[2]['runId']}")).json()["data"]
    assert third["queuedReason"] == {
        "kind": "concurrency_key",
        "key": "a",
        "position": 2,
        "limit": 1,
    }
    finals = [
        (await client.get(f"/api/v1/runs/{s['runId']}", params={"waitSecs": 10})).json()["data"]
        for s in started
    ]
    assert [f["status"] for f in finals] == ["completed"] * 4


async def test_total_limit_caps_all_keys(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client, _limited("wf_total", {"limit": 5, "key": "{{input.customer}}", "totalLimit": 2})
    )

    statuses = [
        (
            await client.post("/api/v1/workflows/wf_total/run", json={"input": {"customer": c}})
        ).json()["data"]["status"]
        for c in ("a", "b", "c")
    ]

    assert statuses == ["pending", "pending", "queued"]

    async def none_left() -> bool:
        queued = await client.get(
            "/api/v1/runs",
            params={"workflowId": "wf_total", "status": "queued,pending,running,waiting"},
        )
        return queued.json()["data"] == []

    await wait_until(none_left, timeout=10)


async def test_cancel_frees_the_slot(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _limited("wf_one", {"limit": 1}, seconds=30))
    first = (await client.post("/api/v1/workflows/wf_one/run")).json()["data"]["runId"]
    second = (await client.post("/api/v1/workflows/wf_one/run")).json()["data"]

    await client.post(f"/api/v1/runs/{first}/cancel")
    after = (await client.get(f"/api/v1/runs/{second['runId']}")).json()["data"]

    assert second["status"] == "queued"
    assert after["status"] in ("pending", "running", "waiting")


async def test_concurrency_without_limits_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/workflows", json=_limited("wf_bad", {"key": "{{input.x}}"})
    )

    assert response.status_code == 400
    assert ["concurrency"] in [d["path"] for d in response.json()["error"]["details"]]


def test_choose_promotions_round_robin_between_keys() -> None:
    queued = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")]

    assert choose_promotions({}, queued, limit=2, total_limit=4) == ["a1", "b1", "c1", "a2"]
    assert choose_promotions({"a": 2}, queued, limit=2, total_limit=None) == ["b1", "c1"]
    assert choose_promotions({"x": 3}, queued, limit=None, total_limit=3) == []


async def test_stalled_queue_is_promoted_by_the_safety_net(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """A queued run nobody promoted (its promoter died) still starts."""
    from flowgate import ids
    from flowgate.clock import Clock
    from flowgate.store import open_store
    from flowgate.store.base import NewRun, RunRow

    await create_workflow(client, _limited("wf_stall", {"limit": 1}, seconds=0))
    store = open_store(database_url)
    run_id = ids.new_id("run")
    try:
        await store.insert_runs(
            [
                NewRun(
                    row=RunRow(
                        id=run_id,
                        project_id="prj_default",
                        workflow_id="wf_stall",
                        workflow_version=1,
                        status="queued",
                        input={"customer": "z"},
                        env={},
                        output=None,
                        error=None,
                        source="api",
                        parent_run_id=None,
                        connection_id=None,
                        priority=0,
                        concurrency_key=None,
                        queued_reason=None,
                        lease_owner=None,
                        lease_expires_at=None,
                        lease_epoch=0,
                        wake_at=None,
                        created_at=Clock().now(),
                        started_at=None,
                        completed_at=None,
                    )
                )
            ]
        )
    finally:
        await store.close()

    final = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]

    assert final["status"] == "completed"
