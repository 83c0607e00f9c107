"""Retries, timeouts and durable sleeps: a run waits without holding a worker."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from flowgate.settings import Settings
from tests import functions
from tests.integration.conftest import create_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(python_modules="tests.functions", workers=1)


def _workflow(workflow_id: str, steps: list[dict], **extra: object) -> dict:
    return {"id": workflow_id, "name": workflow_id, "status": "active", "steps": steps, **extra}


async def _run(client: httpx.AsyncClient, workflow_id: str, **body: object) -> dict:
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/run", json=body, headers={"x-api-wait": "true"}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_retry_until_success_keeps_every_attempt(client: httpx.AsyncClient) -> None:
    functions.FLAKY.clear()
    step = {
        "id": "flaky",
        "type": "python",
        "retry": {"maxAttempts": 4, "backoff": "fixed", "initialDelayMs": 50},
        "config": {"function": "fail_twice", "key": "a"},
    }
    await create_workflow(client, _workflow("wf_retry", [step]))

    data = await _run(client, "wf_retry")

    assert data["status"] == "completed"
    assert data["output"] == {"attempts": 3}
    assert data["steps"][0]["attempt"] == 3
    assert data["steps"][0]["status"] == "completed"


async def test_retry_exhausted_fails_run_with_last_error(client: httpx.AsyncClient) -> None:
    step = {
        "id": "boom",
        "type": "python",
        "retry": {"maxAttempts": 2, "initialDelayMs": 10},
        "config": {"function": "explode"},
    }
    await create_workflow(client, _workflow("wf_exhaust", [step]))

    data = await _run(client, "wf_exhaust")

    assert data["status"] == "failed"
    assert data["error"] == {
        "code": "STEP_FAILED",
        "message": "RuntimeError: kaboom",
        "stepId": "boom",
    }
    assert data["steps"][0]["attempt"] == 2


async def test_workflow_retry_default_applies_to_steps(client: httpx.AsyncClient) -> None:
    functions.FLAKY.clear()
    step = {"id": "flaky", "type": "python", "config": {"function": "fail_twice", "key": "b"}}
    definition = _workflow(
        "wf_default_retry", [step], retry={"maxAttempts": 3, "initialDelayMs": 10}
    )
    await create_workflow(client, definition)

    data = await _run(client, "wf_default_retry")

    assert data["status"] == "completed"


async def test_step_timeout_fails_step_as_timed_out(client: httpx.AsyncClient) -> None:
    step = {"id": "slow", "type": "python", "timeoutSecs": 0.2, "config": {"function": "slow"}}
    await create_workflow(client, _workflow("wf_slow", [step]))

    data = await _run(client, "wf_slow")

    assert data["status"] == "failed"
    assert data["error"]["code"] == "STEP_TIMEOUT"
    assert data["steps"][0]["status"] == "timed_out"


async def test_workflow_timeout_makes_run_timed_out(client: httpx.AsyncClient) -> None:
    steps = [
        {"id": "nap", "type": "sleep", "config": {"seconds": 30}},
        {"id": "after", "type": "transform", "config": {"mapping": 1}},
    ]
    await create_workflow(client, _workflow("wf_deadline", steps, timeoutSecs=0.5))

    data = await _run(client, "wf_deadline")

    assert data["status"] == "timed_out"
    assert data["error"]["code"] == "RUN_TIMEOUT"
    assert [s["status"] for s in data["steps"]] == ["timed_out", "pending"]


async def test_sleep_waits_without_holding_the_worker(client: httpx.AsyncClient) -> None:
    """One worker slot: a quick run finishes while the sleeping one waits."""
    sleeper = _workflow(
        "wf_sleep",
        [
            {"id": "nap", "type": "sleep", "config": {"seconds": 1}},
            {"id": "after", "type": "transform", "config": {"mapping": {"woke": True}}},
        ],
    )
    quick = _workflow("wf_quick", [{"id": "q", "type": "transform", "config": {"mapping": 1}}])
    await create_workflow(client, sleeper)
    await create_workflow(client, quick)
    sleeping = (await client.post("/api/v1/workflows/wf_sleep/run")).json()["data"]["runId"]

    quick_run = await _run(client, "wf_quick")
    meanwhile = (await client.get(f"/api/v1/runs/{sleeping}")).json()["data"]
    final = (await client.get(f"/api/v1/runs/{sleeping}", params={"waitSecs": 10})).json()["data"]

    assert quick_run["status"] == "completed"
    assert meanwhile["status"] == "waiting"
    assert meanwhile["steps"][0]["status"] == "waiting"
    assert final["status"] == "completed"
    assert final["output"] == {"woke": True}
    assert final["steps"][0]["status"] == "completed"
    assert final["steps"][0]["output"]["sleptUntil"].endswith("Z")


@pytest.mark.parametrize(
    ("step", "path"),
    [
        ({"id": "s", "type": "sleep", "config": {"until": "next tuesday"}}, ["config", "until"]),
        ({"id": "s", "type": "sleep", "config": {"seconds": -1}}, ["config", "seconds"]),
        ({"id": "s", "type": "sleep", "config": {}}, ["config"]),
        (
            {"id": "s", "type": "fail", "retry": {"maxAttempts": 0}},
            ["retry", "maxAttempts"],
        ),
        ({"id": "s", "type": "fail", "retry": {"backoff": "linear"}}, ["retry", "backoff"]),
        ({"id": "s", "type": "fail", "timeoutSecs": 0}, ["timeoutSecs"]),
    ],
)
async def test_bad_step_settings_are_400_at_write(
    client: httpx.AsyncClient, step: dict, path: list
) -> None:
    response = await client.post("/api/v1/workflows", json=_workflow("wf_bad", [step]))

    assert response.status_code == 400
    assert ["steps", 0, *path] in [d["path"] for d in response.json()["error"]["details"]]
