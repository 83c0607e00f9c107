"""Durable waits for an outside event (DESIGN §6): a ``wait_for_event`` step parks its run, a
send resolves it and the run goes on; a timeout and a cancel end it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import wait_until
from tests.integration.conftest import create_workflow


def approval(workflow_id: str = "wf_approval", **wait: Any) -> dict[str, Any]:
    config = {"eventKey": "approval-{{input.orderId}}", "timeoutSecs": 3600, **wait}
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "wait", "type": "wait_for_event", "config": config},
            {
                "id": "decide",
                "type": "transform",
                "config": {"mapping": {"approved": "{{steps.wait.output.approved}}"}},
            },
        ],
    }


async def _start(client: httpx.AsyncClient, order_id: str, workflow: str = "wf_approval") -> str:
    started = await client.post(
        f"/api/v1/workflows/{workflow}/run", json={"input": {"orderId": order_id}}
    )
    assert started.status_code == 201, started.text
    run_id: str = started.json()["data"]["runId"]
    return run_id


async def _run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
    return run


async def _waiting(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        response = await client.get(f"/v1/events/{key}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == "waiting" else None

    trigger: dict[str, Any] = await wait_until(found)
    return trigger


async def test_a_sent_event_becomes_the_steps_output_and_the_run_completes(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, approval())
    run_id = await _start(client, "o1")
    trigger = await _waiting(client, "approval-o1")

    sent = await client.post("/v1/events/approval-o1/send", json={"payload": {"approved": True}})
    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]

    assert trigger["workflow_run_id"] == run_id
    assert trigger["source_type"] == "workflow_step"
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert (body["status"], body["response_payload"]) == ("received", {"approved": True})
    assert body["sent_by"].startswith("api-key:")
    assert ended["status"] == "completed"
    assert ended["output"] == {"approved": True}
    assert ended["steps"][0]["output"] == {"approved": True}


async def test_a_resend_of_the_same_payload_is_200_and_another_payload_409(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, approval())
    await _start(client, "o2")
    await _waiting(client, "approval-o2")

    first = await client.post("/v1/events/approval-o2/send", json={"payload": {"approved": True}})
    again = await client.post("/v1/events/approval-o2/send", json={"payload": {"approved": True}})
    other = await client.post("/v1/events/approval-o2/send", json={"payload": {"approved": False}})
    unknown = await client.post("/v1/events/nobody-waits/send", json={"payload": 1})

    assert (first.status_code, again.status_code) == (200, 200)
    assert other.status_code == 409
    assert other.json()["error"] == {
        "code": "conflict",
        "message": "event trigger is not in waiting state",
    }
    assert other.json()["request_id"] == other.headers["x-request-id"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


async def test_a_wait_that_times_out_fails_its_step_and_the_run(client: httpx.AsyncClient) -> None:
    await create_workflow(client, approval(timeoutSecs=0.3))
    run_id = await _start(client, "o3")

    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]
    trigger = (await client.get("/v1/events/approval-o3")).json()

    assert ended["status"] == "failed"
    assert ended["steps"][0]["status"] == "timed_out"
    assert ended["error"]["code"] == "STEP_TIMEOUT"
    assert (trigger["status"], trigger["error"]) == ("timed_out", "timed out")


async def test_a_wait_that_times_out_may_continue_with_a_default(client: httpx.AsyncClient) -> None:
    wait = {"timeoutSecs": 0.3, "onTimeout": "continue", "timeoutOutput": {"approved": False}}
    await create_workflow(client, approval(**wait))
    run_id = await _start(client, "o4")

    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]

    assert ended["status"] == "completed"
    assert ended["output"] == {"approved": False}


async def test_a_canceled_wait_cancels_its_step_and_fails_the_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, approval())
    run_id = await _start(client, "o5")
    await _waiting(client, "approval-o5")

    canceled = await client.delete("/v1/events/approval-o5")
    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]
    again = await client.delete("/v1/events/approval-o5")

    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["error"]) == ("canceled", "canceled by user")
    assert ended["status"] == "failed"
    assert ended["steps"][0]["status"] == "canceled"
    assert again.status_code == 409


async def test_a_second_wait_on_a_live_key_is_a_clear_step_error(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, approval())
    await _start(client, "same")
    await _waiting(client, "approval-same")
    second = await _start(client, "same")

    ended = (await client.get(f"/api/v1/runs/{second}", params={"waitSecs": 10})).json()["data"]

    assert ended["status"] == "failed"
    assert "already has a waiting trigger" in ended["error"]["message"]


async def test_canceling_the_run_cancels_its_wait(client: httpx.AsyncClient) -> None:
    await create_workflow(client, approval())
    run_id = await _start(client, "o6")
    await _waiting(client, "approval-o6")

    await client.post(f"/api/v1/runs/{run_id}/cancel")
    trigger = (await client.get("/v1/events/approval-o6")).json()
    late = await client.post("/v1/events/approval-o6/send", json={"payload": 1})

    assert trigger["status"] == "canceled"
    assert late.status_code == 409


async def test_standalone_wait_is_sent_to_and_listed(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/events", json={"event_key": "job-1", "timeout_secs": 60, "request_payload": {"a": 1}}
    )
    duplicate = await client.post("/v1/events", json={"event_key": "job-1", "timeout_secs": 60})
    sent = await client.post("/v1/events/job-1/send", json={"payload": "ok"})
    listed = (await client.get("/v1/events", params={"source_type": "job_run"})).json()
    stats = (await client.get("/v1/events/stats")).json()

    assert created.status_code == 201, created.text
    assert created.json()["source_type"] == "job_run"
    assert created.json()["job_run_id"].startswith("job_")
    assert duplicate.status_code == 409
    assert sent.json()["status"] == "received"
    assert [item["event_key"] for item in listed["data"]] == ["job-1"]
    assert listed["has_more"] is False
    assert stats["received_count"] == 1
    assert stats["total_count"] == 1
