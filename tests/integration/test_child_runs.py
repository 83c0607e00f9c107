"""``run_workflow`` steps: child runs, waited for durably; cancelling a parent cancels them."""

from __future__ import annotations

import httpx

from tests.integration.conftest import create_workflow


def _wf(workflow_id: str, steps: list[dict], **extra: object) -> dict:
    return {"id": workflow_id, "name": workflow_id, "status": "active", "steps": steps, **extra}


CHILD = _wf(
    "wf_child",
    [{"id": "double", "type": "transform", "config": {"mapping": {"n": "{{input.n | times: 2}}"}}}],
)


async def test_run_workflow_wait_returns_child_output(client: httpx.AsyncClient) -> None:
    await create_workflow(client, CHILD)
    parent = _wf(
        "wf_parent",
        [
            {
                "id": "call",
                "type": "run_workflow",
                "config": {"workflow": "wf_child", "input": {"n": "{{input.n}}"}, "wait": True},
            },
            {"id": "use", "type": "transform", "config": {"mapping": "{{steps.call.output.n}}"}},
        ],
    )
    await create_workflow(client, parent)

    response = await client.post(
        "/api/v1/workflows/wf_parent/run", json={"input": {"n": 21}}, headers={"x-api-wait": "true"}
    )

    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["output"] == 42
    children = (await client.get("/api/v1/runs", params={"source": "workflow"})).json()["data"]
    assert len(children) == 1
    assert children[0]["parentRunId"] == data["id"]
    assert children[0]["workflowId"] == "wf_child"


async def test_run_workflow_without_wait_returns_child_id(client: httpx.AsyncClient) -> None:
    await create_workflow(client, CHILD)
    parent = _wf(
        "wf_fire",
        [{"id": "call", "type": "run_workflow", "config": {"workflow": "wf_child"}}],
    )
    await create_workflow(client, parent)

    data = (
        await client.post("/api/v1/workflows/wf_fire/run", headers={"x-api-wait": "true"})
    ).json()["data"]

    assert data["status"] == "completed"
    assert data["output"]["runId"].startswith("run_")


async def test_failed_child_fails_the_step(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client, _wf("wf_bad_child", [{"id": "f", "type": "fail", "config": {"message": "nope"}}])
    )
    parent = _wf(
        "wf_parent2",
        [
            {
                "id": "call",
                "type": "run_workflow",
                "config": {"workflow": "wf_bad_child", "wait": True},
            }
        ],
    )
    await create_workflow(client, parent)

    data = (
        await client.post("/api/v1/workflows/wf_parent2/run", headers={"x-api-wait": "true"})
    ).json()["data"]

    assert data["status"] == "failed"
    assert data["error"]["stepId"] == "call"
    assert "ended failed: nope" in data["error"]["message"]


async def test_unknown_child_workflow_fails_the_step(client: httpx.AsyncClient) -> None:
    parent = _wf(
        "wf_orphan",
        [
            {
                "id": "call",
                "type": "run_workflow",
                "config": {"workflow": "wf_missing", "wait": True},
            }
        ],
    )
    await create_workflow(client, parent)

    data = (
        await client.post("/api/v1/workflows/wf_orphan/run", headers={"x-api-wait": "true"})
    ).json()["data"]

    assert data["status"] == "failed"
    assert "Workflow not found" in data["error"]["message"]


async def test_cancel_parent_cancels_waiting_child(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client, _wf("wf_slow_child", [{"id": "nap", "type": "sleep", "config": {"seconds": 60}}])
    )
    parent = _wf(
        "wf_waiting_parent",
        [
            {
                "id": "call",
                "type": "run_workflow",
                "config": {"workflow": "wf_slow_child", "wait": True},
            }
        ],
    )
    await create_workflow(client, parent)
    parent_id = (await client.post("/api/v1/workflows/wf_waiting_parent/run")).json()["data"][
        "runId"
    ]

    async def child_waiting() -> list:
        runs = (await client.get("/api/v1/runs", params={"source": "workflow"})).json()["data"]
        return [r for r in runs if r["status"] == "waiting"]

    from tests.conftest import wait_until

    [child] = await wait_until(child_waiting)
    canceled = await client.post(f"/api/v1/runs/{parent_id}/cancel")
    child_after = (await client.get(f"/api/v1/runs/{child['id']}")).json()["data"]

    assert canceled.status_code == 200
    assert child_after["status"] == "canceled"
