"""``python`` steps call operator-registered functions; cancelling stops before the next step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from flowgate.settings import Settings
from tests import functions
from tests.integration.conftest import create_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    """One worker slot: a run that ends after another started proves the first is done."""
    return make_settings(python_modules="tests.functions", workers=1)


def _workflow(workflow_id: str, steps: list[dict]) -> dict:
    return {"id": workflow_id, "name": workflow_id, "status": "active", "steps": steps}


async def test_python_step_sync_and_async_functions(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client,
        _workflow(
            "wf_py",
            [
                {
                    "id": "add",
                    "type": "python",
                    "config": {"function": "add", "a": 2, "b": "{{input.b}}"},
                },
                {
                    "id": "shout",
                    "type": "python",
                    "config": {"function": "shout", "text": "hi {{steps.add.output.sum}}"},
                },
            ],
        ),
    )

    response = await client.post(
        "/api/v1/workflows/wf_py/run", json={"input": {"b": 3}}, headers={"x-api-wait": "true"}
    )

    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["steps"][0]["output"] == {"sum": 5, "key": f"{data['id']}:add"}
    assert data["output"] == "HI 5"


async def test_python_step_exception_fails_run(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client,
        _workflow("wf_boom", [{"id": "x", "type": "python", "config": {"function": "explode"}}]),
    )

    response = await client.post("/api/v1/workflows/wf_boom/run", headers={"x-api-wait": "true"})

    data = response.json()["data"]
    assert data["status"] == "failed"
    assert data["error"] == {
        "code": "STEP_FAILED",
        "message": "RuntimeError: kaboom",
        "stepId": "x",
    }


async def test_python_step_non_json_result_fails_step(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client,
        _workflow("wf_set", [{"id": "x", "type": "python", "config": {"function": "not_json"}}]),
    )

    response = await client.post("/api/v1/workflows/wf_set/run", headers={"x-api-wait": "true"})

    data = response.json()["data"]
    assert data["status"] == "failed"
    assert "not JSON" in data["error"]["message"]


async def test_unregistered_function_is_rejected_at_write(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/workflows",
        json=_workflow(
            "wf_x", [{"id": "x", "type": "python", "config": {"function": "os.system"}}]
        ),
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {
            "path": ["steps", 0, "config", "function"],
            "message": "No registered function named 'os.system'",
        }
    ]


async def test_cancel_running_run_stops_before_next_step(client: httpx.AsyncClient) -> None:
    functions.GATE.clear()
    functions.ENTERED.clear()
    await create_workflow(
        client,
        _workflow(
            "wf_gate",
            [
                {"id": "gate", "type": "python", "config": {"function": "wait_for_gate"}},
                {"id": "after", "type": "python", "config": {"function": "add", "a": 1, "b": 1}},
            ],
        ),
    )
    run_id = (await client.post("/api/v1/workflows/wf_gate/run")).json()["data"]["runId"]
    await asyncio.to_thread(functions.ENTERED.wait, 10)

    canceled = await client.post(f"/api/v1/runs/{run_id}/cancel")
    functions.GATE.set()

    assert canceled.status_code == 200
    assert canceled.json()["data"]["status"] == "canceled"
    assert canceled.json()["data"]["error"] == {
        "code": "CANCELED",
        "message": "Canceled by user",
        "stepId": None,
    }

    follow_up = await client.post("/api/v1/workflows/wf_gate/run", headers={"x-api-wait": "true"})
    assert follow_up.json()["data"]["status"] == "completed"
    final = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
    assert final["status"] == "canceled"
    assert [s["status"] for s in final["steps"]] == ["canceled", "canceled"]
    assert (run_id, "after") not in functions.CALLS
