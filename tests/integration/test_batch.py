"""``POST /api/v1/workflows/{id}/run/batch``: one result per item, in order."""

from __future__ import annotations

import httpx

from tests.integration.conftest import create_workflow, simple_workflow


async def test_batch_bad_items_do_not_sink_the_others(client: httpx.AsyncClient) -> None:
    definition = simple_workflow(
        "wf_b", inputSchema={"type": "object", "properties": {"n": {"type": "integer"}}}
    )
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_b/run/batch",
        json={
            "runs": [
                {"input": {"n": 1}},
                {"input": {"n": "one"}},
                {"input": [1]},
                {"priority": "high"},
                {"input": {"n": 2}, "idempotencyKey": "b-1"},
                {"input": {"n": 2}, "idempotencyKey": "b-1"},
            ]
        },
    )

    assert response.status_code == 200
    items = response.json()["data"]
    assert [item["success"] for item in items] == [True, False, False, False, True, True]
    assert items[0]["data"]["status"] == "pending"
    assert items[0]["data"]["workflowId"] == "wf_b"
    assert items[1]["error"]["code"] == "VALIDATION_ERROR"
    assert items[1]["error"]["details"] == [
        {"path": ["n"], "message": "'one' is not of type 'integer'"}
    ]
    assert items[2]["error"]["code"] == "INVALID_REQUEST"
    assert items[3]["error"]["code"] == "INVALID_REQUEST"
    assert items[4]["data"]["runId"] == items[5]["data"]["runId"]
    runs = (await client.get("/api/v1/runs", params={"workflowId": "wf_b"})).json()["data"]
    assert len(runs) == 2
    assert {run["source"] for run in runs} == {"batch"}


async def test_batch_over_1000_items_is_rejected(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_b"))

    response = await client.post("/api/v1/workflows/wf_b/run/batch", json={"runs": [{}] * 1001})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


async def test_batch_unknown_workflow_returns_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows/wf_nope/run/batch", json={"runs": [{}]})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Workflow not found"
