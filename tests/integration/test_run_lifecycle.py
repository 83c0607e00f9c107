"""Every way to create a run obeys the same rules, every way to end one leaves nothing in flight
(DESIGN §7 "Every run counts", "A canceled run leaves nothing in flight", "At-least-once,
visibly", the output limit and secrets kept out of messages)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests import functions
from tests.conftest import wait_until
from tests.integration.conftest import create_workflow, simple_workflow

MAX_OUTPUT = 2_000


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        python_modules="tests.functions", max_output_bytes=MAX_OUTPUT, poll_interval_secs=0.2
    )


def _sleeper(workflow_id: str, *, seconds: float = 60, **extra: Any) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": seconds}},
            {"id": "after", "type": "transform", "config": {"mapping": {"done": True}}},
        ],
        **extra,
    }


async def _run(client: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/workflows/{workflow_id}/run", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _get(client: httpx.AsyncClient, run_id: str, wait: float = 0) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": wait})
    data: dict[str, Any] = response.json()["data"]
    return data


async def _status_is(client: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        run = await _get(client, run_id)
        return run if run["status"] == status else None

    found: dict[str, Any] = await wait_until(check, timeout=10)
    return found


async def test_replay_under_full_concurrency_limit_is_queued(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _sleeper("wf_one_at_a_time", concurrency={"limit": 1}))
    first = await _run(client, "wf_one_at_a_time")
    await _status_is(client, first["runId"], "waiting")

    replay = await client.post(f"/api/v1/runs/{first['runId']}/replay")
    await client.post(f"/api/v1/runs/{first['runId']}/cancel")
    promoted = await _status_is(client, replay.json()["data"]["runId"], "waiting")

    assert replay.status_code == 201
    assert replay.json()["data"]["status"] == "queued"
    assert promoted["source"] == "replay"


async def _project_with_quota(client: httpx.AsyncClient, quota: int) -> dict[str, str]:
    project = (await client.post("/api/v1/projects", json={"name": "Quota"})).json()["data"]
    key = (
        await client.post(
            "/api/v1/keys",
            json={"name": "q", "scopes": ["admin"], "projectId": project["id"]},
        )
    ).json()["data"]["key"]
    patched = await client.patch(
        f"/api/v1/projects/{project['id']}", json={"runQuotaPerDay": quota}
    )
    assert patched.status_code == 200
    return {"x-api-key": key}


async def test_quota_counts_replays_and_reruns(client: httpx.AsyncClient) -> None:
    headers = await _project_with_quota(client, 2)
    await client.post("/api/v1/workflows", json=simple_workflow("wf_q"), headers=headers)
    first = await client.post("/api/v1/workflows/wf_q/run", headers={**headers, "x-api-wait": "10"})
    run_id = first.json()["data"]["id"]

    replay = await client.post(f"/api/v1/runs/{run_id}/replay", headers=headers)
    second_replay = await client.post(f"/api/v1/runs/{run_id}/replay", headers=headers)
    rerun = await client.post(f"/api/v1/runs/{run_id}/rerun", headers=headers)
    bulk = await client.post("/api/v1/runs/replay", json={}, headers=headers)
    listed = await client.get("/api/v1/runs", headers=headers)

    assert replay.status_code == 201
    for refused in (second_replay, rerun, bulk):
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert len(listed.json()["data"]) == 2


async def test_quota_counts_child_runs(client: httpx.AsyncClient) -> None:
    headers = await _project_with_quota(client, 1)
    await client.post("/api/v1/workflows", json=simple_workflow("wf_child"), headers=headers)
    parent = {
        "id": "wf_parent",
        "name": "parent",
        "status": "active",
        "steps": [{"id": "child", "type": "run_workflow", "config": {"workflow": "wf_child"}}],
    }
    await client.post("/api/v1/workflows", json=parent, headers=headers)

    response = await client.post(
        "/api/v1/workflows/wf_parent/run", headers={**headers, "x-api-wait": "10"}
    )

    run = response.json()["data"]
    assert run["status"] == "failed"
    assert run["error"]["stepId"] == "child"
    assert "quota" in run["error"]["message"]


async def test_bulk_replay_over_quota_starts_none(client: httpx.AsyncClient) -> None:
    headers = await _project_with_quota(client, 3)
    await client.post("/api/v1/workflows", json=simple_workflow("wf_q"), headers=headers)
    for _ in range(2):
        await client.post("/api/v1/workflows/wf_q/run", headers={**headers, "x-api-wait": "10"})

    bulk = await client.post("/api/v1/runs/replay", json={}, headers=headers)
    listed = await client.get("/api/v1/runs", headers=headers)

    assert bulk.status_code == 429
    assert "2 runs" in bulk.json()["error"]["message"]
    assert len(listed.json()["data"]) == 2


async def test_bulk_cancel_cancels_children_of_canceled_parent(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _sleeper("wf_sleepy_child"))
    parent = {
        "id": "wf_waiting_parent",
        "name": "waiting parent",
        "status": "active",
        "steps": [
            {
                "id": "child",
                "type": "run_workflow",
                "config": {"workflow": "wf_sleepy_child", "wait": True},
            }
        ],
    }
    await create_workflow(client, parent)
    started = await _run(client, "wf_waiting_parent")
    waiting = await _status_is(client, started["runId"], "waiting")
    child_id = waiting["steps"][0]["output"]["childRunId"]
    await _status_is(client, child_id, "waiting")

    response = await client.post("/api/v1/runs/cancel", json={"workflowId": "wf_waiting_parent"})
    child = await _get(client, child_id)

    assert response.json()["data"]["runIds"] == [started["runId"]]
    assert child["status"] == "canceled"
    assert [step["status"] for step in child["steps"]] == ["canceled", "canceled"]


async def test_canceled_run_leaves_no_step_waiting_or_pending(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _sleeper("wf_nap"))
    started = await _run(client, "wf_nap")
    await _status_is(client, started["runId"], "waiting")

    await client.post(f"/api/v1/runs/{started['runId']}/cancel")
    run = await _get(client, started["runId"])

    assert run["status"] == "canceled"
    assert run["error"] == {"code": "CANCELED", "message": "Canceled by user", "stepId": None}
    nap, after = run["steps"]
    assert (nap["status"], nap["attempt"]) == ("canceled", 1)
    assert nap["completedAt"] is not None
    assert after["status"] == "canceled"


async def test_side_effecting_attempt_is_committed_running_before_it_calls_out(
    client: httpx.AsyncClient,
) -> None:
    functions.GATE.clear()
    functions.ENTERED.clear()
    definition = {
        "id": "wf_gate",
        "name": "gate",
        "status": "active",
        "steps": [{"id": "gate", "type": "python", "config": {"function": "wait_for_gate"}}],
    }
    await create_workflow(client, definition)
    started = await _run(client, "wf_gate")
    await wait_until(functions.ENTERED.is_set, timeout=10)

    during = await _get(client, started["runId"])
    functions.GATE.set()
    after = await _get(client, started["runId"], wait=10)

    step = during["steps"][0]
    assert (step["status"], step["attempt"], step["completedAt"]) == ("running", 1, None)
    assert step["startedAt"] is not None
    assert after["status"] == "completed"
    assert after["steps"][0]["status"] == "completed"


async def test_step_output_over_limit_fails_with_output_too_large(
    client: httpx.AsyncClient,
) -> None:
    definition = simple_workflow("wf_big")
    definition["steps"][0]["config"]["mapping"] = {"big": "{{input.text | append: input.text}}"}
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_big/run",
        json={"input": {"text": "x" * MAX_OUTPUT}},
        headers={"x-api-wait": "10"},
    )

    run = response.json()["data"]
    assert run["status"] == "failed"
    assert run["error"]["code"] == "OUTPUT_TOO_LARGE"
    assert run["error"]["stepId"] == "only"
    assert run["steps"][0]["output"] is None
    assert "FLOWGATE_MAX_OUTPUT_BYTES" in run["error"]["message"]


async def test_run_output_over_limit_fails_with_output_too_large(
    client: httpx.AsyncClient,
) -> None:
    definition = simple_workflow("wf_big_output", output={"twice": ["{{input.t}}", "{{input.t}}"]})
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_big_output/run",
        json={"input": {"t": "y" * (MAX_OUTPUT - 500)}},
        headers={"x-api-wait": "10"},
    )

    run = response.json()["data"]
    assert run["status"] == "failed"
    assert run["output"] is None
    assert run["error"]["code"] == "OUTPUT_TOO_LARGE"
    assert run["error"]["stepId"] is None


async def test_error_message_never_shows_an_env_value(client: httpx.AsyncClient) -> None:
    secret = "tok_live_51Hx9mPq"
    definition = {
        "id": "wf_leaky",
        "name": "leaky",
        "status": "active",
        "env": {"TOKEN": "placeholder"},
        "steps": [
            {
                "id": "call",
                "type": "python",
                "config": {"function": "fail_with", "message": "Bearer {{env.TOKEN}}"},
            }
        ],
    }
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_leaky/run",
        json={"env": {"TOKEN": secret}},
        headers={"x-api-wait": "10"},
    )

    run = response.json()["data"]
    assert run["status"] == "failed"
    assert secret not in response.text
    assert run["error"]["message"] == "RuntimeError: upstream refused: Bearer ***"


async def test_idempotent_resend_answers_after_the_quota_is_used(
    client: httpx.AsyncClient,
) -> None:
    headers = await _project_with_quota(client, 1)
    await client.post("/api/v1/workflows", json=simple_workflow("wf_q"), headers=headers)
    body = {"idempotencyKey": "order-1", "input": {"n": 1}}

    first = await client.post("/api/v1/workflows/wf_q/run", json=body, headers=headers)
    again = await client.post("/api/v1/workflows/wf_q/run", json=body, headers=headers)
    other = await client.post(
        "/api/v1/workflows/wf_q/run", json={"idempotencyKey": "order-2"}, headers=headers
    )

    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["runId"] == first.json()["data"]["runId"]
    assert other.status_code == 429


async def test_canceling_a_child_wakes_its_waiting_parent(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _sleeper("wf_kid"))
    parent_definition = {
        "id": "wf_parent_of_kid",
        "name": "parent of kid",
        "status": "active",
        "steps": [
            {"id": "kid", "type": "run_workflow", "config": {"workflow": "wf_kid", "wait": True}}
        ],
    }
    await create_workflow(client, parent_definition)
    parent = await _run(client, "wf_parent_of_kid")
    waiting = await _status_is(client, parent["runId"], "waiting")
    child_id = waiting["steps"][0]["output"]["childRunId"]
    await _status_is(client, child_id, "waiting")

    await client.post(f"/api/v1/runs/{child_id}/cancel")
    ended = await _get(client, parent["runId"], wait=10)

    assert ended["status"] == "failed"
    assert ended["error"]["stepId"] == "kid"
    assert "canceled" in ended["error"]["message"]


async def test_step_raising_its_own_timeout_error_fails_the_step(
    client: httpx.AsyncClient,
) -> None:
    definition = {
        "id": "wf_own_timeout",
        "name": "own timeout",
        "status": "active",
        "steps": [{"id": "call", "type": "python", "config": {"function": "own_timeout"}}],
    }
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_own_timeout/run", headers={"x-api-wait": "10"}
    )

    run = response.json()["data"]
    assert run["status"] == "failed"
    assert run["error"] == {
        "code": "STEP_FAILED",
        "message": "TimeoutError: socket timed out",
        "stepId": "call",
    }
