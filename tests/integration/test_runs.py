"""Starting runs and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import wait_until
from tests.integration.conftest import ORDER_INPUT, ORDER_WORKFLOW, create_workflow, simple_workflow


async def _run_status(client: httpx.AsyncClient, run_id: str) -> dict:
    response = await client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200
    return response.json()["data"]


async def test_start_run_order_example_completes_with_total(client: httpx.AsyncClient) -> None:
    await create_workflow(client, ORDER_WORKFLOW)

    response = await client.post(
        "/api/v1/workflows/wf_order_total/run", json={"input": ORDER_INPUT}
    )

    assert response.status_code == 201
    body = response.json()
    run_id = body["data"]["runId"]
    assert body == {
        "success": True,
        "data": {
            "runId": run_id,
            "status": "pending",
            "workflowId": "wf_order_total",
            "workflowVersion": 1,
        },
    }
    assert run_id.startswith("run_")
    assert response.headers["x-run-id"] == run_id
    assert response.headers["location"] == f"/api/v1/runs/{run_id}"
    run = await wait_until(
        lambda: _finished(client, run_id),
    )
    assert run["status"] == "completed"
    assert run["output"]["total"] == pytest.approx(27.54)
    assert run["output"]["subtotal"] == 25.5
    assert isinstance(run["output"]["total"], float)
    assert run["input"]["currency"] == "usd"
    [step] = run["steps"]
    assert step["id"] == "calculate-total"
    assert step["status"] == "completed"
    assert step["attempt"] == 1
    assert step["output"] == run["output"]
    assert isinstance(step["durationMs"], int)
    assert run["createdAt"].endswith("Z")


async def _finished(client: httpx.AsyncClient, run_id: str) -> dict | None:
    run = await _run_status(client, run_id)
    return run if run["status"] in ("completed", "failed", "canceled", "timed_out") else None


async def test_start_run_with_wait_returns_whole_run(client: httpx.AsyncClient) -> None:
    await create_workflow(client, ORDER_WORKFLOW)

    response = await client.post(
        "/api/v1/workflows/Order total/run",
        json={"input": ORDER_INPUT},
        headers={"x-api-wait": "true"},
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["output"]["total"] == pytest.approx(27.54)
    assert data["steps"][0]["status"] == "completed"


async def test_start_run_bad_wait_header_returns_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post(
        "/api/v1/workflows/wf_a/run", json={}, headers={"x-api-wait": "soon"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


async def test_start_run_form_content_type_is_read_as_json(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post(
        "/api/v1/workflows/wf_a/run",
        content=b'{"input": {"n": 5}}',
        headers={"content-type": "application/x-www-form-urlencoded", "x-api-wait": "5"},
    )

    assert response.status_code == 200
    assert response.json()["data"]["output"] == {"n": 5}


async def test_start_run_empty_body_means_empty_input(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post("/api/v1/workflows/wf_a/run", headers={"x-api-wait": "5"})

    assert response.status_code == 200
    assert response.json()["data"]["input"] == {}


async def test_start_run_idempotent_same_input_replays(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    body = {"input": {"n": 1}, "idempotencyKey": "order-1"}

    first = await client.post("/api/v1/workflows/wf_a/run", json=body)
    second = await client.post(
        "/api/v1/workflows/wf_a/run",
        json={"input": {"n": 1.0}},
        headers={"Idempotency-Key": "order-1"},
    )

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["data"]["runId"] == first.json()["data"]["runId"]
    assert set(second.json()["data"]) == {"runId", "status", "workflowId", "workflowVersion"}


async def test_start_run_reused_key_other_input_returns_409(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    first = await client.post(
        "/api/v1/workflows/wf_a/run", json={"input": {"n": 1, "tags": ["x"]}, "idempotencyKey": "k"}
    )

    response = await client.post(
        "/api/v1/workflows/wf_a/run", json={"input": {"n": 2, "tags": ["y"]}, "idempotencyKey": "k"}
    )

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "IDEMPOTENCY_KEY_REUSED",
        "message": "This idempotency key was already used with a different input",
        "details": {
            "runId": first.json()["data"]["runId"],
            "differences": [
                {"path": ["n"], "stored": 1, "sent": 2},
                {"path": ["tags", 0], "stored": "x", "sent": "y"},
            ],
        },
    }


async def test_start_run_concurrent_same_key_creates_one_run(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    body = {"input": {"n": 1}, "idempotencyKey": "burst"}

    responses = await asyncio.gather(
        *[client.post("/api/v1/workflows/wf_a/run", json=body) for _ in range(20)]
    )

    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert len({r.json()["data"]["runId"] for r in responses}) == 1
    listed = await client.get("/api/v1/runs", params={"workflowId": "wf_a"})
    assert len(listed.json()["data"]) == 1


async def test_start_run_replay_answers_after_pause(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    body = {"input": {"n": 1}, "idempotencyKey": "before-pause"}
    first = await client.post("/api/v1/workflows/wf_a/run", json=body)
    await client.post("/api/v1/workflows/wf_a/pause")

    again = await client.post("/api/v1/workflows/wf_a/run", json=body)
    fresh = await client.post("/api/v1/workflows/wf_a/run", json={"input": {"n": 1}})

    assert again.status_code == 200
    assert again.json()["data"]["runId"] == first.json()["data"]["runId"]
    assert fresh.status_code == 400
    assert fresh.json()["error"] == {
        "code": "INVALID_STATUS",
        "message": "Workflow must be active to run. Current status: paused",
    }


async def test_start_run_env_is_masked_and_overrides_defaults(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_env", env={"REGION": "eu", "TIER": "free"})
    definition["steps"][0]["config"]["mapping"] = {
        "region": "{{env.REGION}}",
        "tier": "{{env.TIER}}",
    }
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_env/run",
        json={"env": {"REGION": "us"}},
        headers={"x-api-wait": "true"},
    )

    data = response.json()["data"]
    assert data["env"] == {"REGION": "***", "TIER": "***"}
    assert data["output"] == {"region": "us", "tier": "free"}


async def test_run_priority_is_stored(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post("/api/v1/workflows/wf_a/run", json={"priority": 7})
    run = await _run_status(client, response.json()["data"]["runId"])

    assert run["priority"] == 7


async def test_failing_workflow_reports_step_error(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_fail")
    definition["steps"].append(
        {"id": "boom", "type": "fail", "config": {"message": "no luck", "code": "OUT_OF_LUCK"}}
    )
    definition["steps"].append({"id": "never", "type": "transform", "config": {"mapping": 1}})
    await create_workflow(client, definition)

    response = await client.post("/api/v1/workflows/wf_fail/run", headers={"x-api-wait": "true"})

    data = response.json()["data"]
    assert data["status"] == "failed"
    assert data["error"] == {"code": "OUT_OF_LUCK", "message": "no luck", "stepId": "boom"}
    assert [s["status"] for s in data["steps"]] == ["completed", "failed", "pending"]


async def test_step_if_false_is_skipped_and_continue_on_error(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_if")
    definition["steps"] = [
        {"id": "maybe", "type": "transform", "if": "input.n > 10", "config": {"mapping": "big"}},
        {"id": "oops", "type": "fail", "continueOnError": True, "config": {"message": "meh"}},
        {"id": "last", "type": "transform", "config": {"mapping": "{{steps.maybe.output}}"}},
    ]
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_if/run", json={"input": {"n": 3}}, headers={"x-api-wait": "true"}
    )

    data = response.json()["data"]
    assert data["status"] == "completed"
    assert [s["status"] for s in data["steps"]] == ["skipped", "failed", "completed"]
    assert data["output"] is None


async def test_workflow_output_mapping_is_the_run_output(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_out", output={"doubled": "{{steps.only.output.n | times: 2}}"})
    await create_workflow(client, definition)

    response = await client.post(
        "/api/v1/workflows/wf_out/run", json={"input": {"n": 21}}, headers={"x-api-wait": "true"}
    )

    assert response.json()["data"]["output"] == {"doubled": 42}


async def test_list_runs_paginates_without_gaps(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    started = [
        (await client.post("/api/v1/workflows/wf_a/run", json={"input": {"n": i}})).json()["data"][
            "runId"
        ]
        for i in range(7)
    ]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/runs", params=params)).json()
        seen += [r["id"] for r in page["data"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]

    assert seen == list(reversed(started))


async def test_list_runs_filters_by_status(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    await client.post("/api/v1/workflows/wf_a/run", headers={"x-api-wait": "true"})

    completed = await client.get("/api/v1/runs", params={"status": "completed"})
    failed = await client.get("/api/v1/runs", params={"status": "failed"})
    bad = await client.get("/api/v1/runs", params={"status": "finished"})

    assert len(completed.json()["data"]) == 1
    assert failed.json()["data"] == []
    assert bad.status_code == 400


async def test_list_runs_and_bulk_replay_honour_a_creation_time_window(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    runs = []
    for n in range(3):
        started = await client.post(
            "/api/v1/workflows/wf_a/run", json={"input": {"n": n}}, headers={"x-api-wait": "true"}
        )
        runs.append(started.json()["data"])
    window = {"createdAfter": runs[0]["createdAt"], "createdBefore": runs[2]["createdAt"]}

    listed = await client.get("/api/v1/runs", params=window)
    dry = await client.post("/api/v1/runs/replay", json={**window, "dryRun": True})
    naive = await client.get("/api/v1/runs", params={"createdBefore": "2026-01-01T00:00:00"})

    assert [run["id"] for run in listed.json()["data"]] == [runs[1]["id"]]
    assert dry.json()["data"]["matched"] == 1
    assert naive.status_code == 400
    assert "createdBefore needs a time zone" in naive.json()["error"]["message"]


async def test_cancel_finished_run_returns_409(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    run = (await client.post("/api/v1/workflows/wf_a/run", headers={"x-api-wait": "true"})).json()

    response = await client.post(f"/api/v1/runs/{run['data']['id']}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


async def test_get_unknown_run_returns_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/runs/run_nope")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Run not found"},
    }


async def test_start_run_overlong_idempotency_header_returns_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post(
        "/api/v1/workflows/wf_a/run", headers={"Idempotency-Key": "k" * 501}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("value", [1, 2.5, True, None, "7", [1, "a"], {"n": 0}])
async def test_step_output_of_any_json_type_reads_back(
    client: httpx.AsyncClient, value: object
) -> None:
    definition = simple_workflow("wf_any")
    definition["steps"][0]["config"]["mapping"] = value
    await create_workflow(client, definition)

    response = await client.post("/api/v1/workflows/wf_any/run", headers={"x-api-wait": "true"})

    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["output"] == value
    assert data["steps"][0]["output"] == value
