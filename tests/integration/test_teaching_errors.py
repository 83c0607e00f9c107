"""Errors that teach (issue 11): a failed call shows its response, a queued run says why, a bare
input gets a hint, and an unknown Liquid filter is refused when the workflow is saved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests.integration.conftest import create_workflow, simple_workflow

SECRET = "sk_live_teaching_secret"


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http_allow_private=True, http_timeout_secs=5)


def _calling(workflow_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [{"id": "call", "type": "http", "config": {"method": "POST", **config}}],
    }


async def _run_to_end(client: httpx.AsyncClient, workflow_id: str, body: dict) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/run", json=body, headers={"x-api-wait": "10"}
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


# -- an http step's failure keeps the response ----------------------------------------------


async def test_http_step_400_json_keeps_status_and_parsed_body_secret_masked(
    client: httpx.AsyncClient, target: str
) -> None:
    url = f"{target}/reply?status=400"
    sent = {"error": {"message": "customerId is required", "echo": "{{env.TOKEN}}"}}
    await create_workflow(client, _calling("wf_bad_call", {"url": url, "json": sent}))

    run = await _run_to_end(client, "wf_bad_call", {"input": {}, "env": {"TOKEN": SECRET}})

    step = run["steps"][0]
    assert run["status"] == "failed"
    assert run["error"] == {
        "code": "STEP_FAILED",
        "message": f"HTTP 400 from {url}",
        "stepId": "call",
    }
    assert step["status"] == "failed"
    assert step["error"]["message"] == f"HTTP 400 from {url}"
    assert step["output"]["status"] == 400
    assert step["output"]["headers"]["content-type"] == "application/json"
    assert step["output"]["body"] == {"error": {"message": "customerId is required", "echo": "***"}}
    assert SECRET not in repr(run)


async def test_http_step_500_long_text_keeps_first_4_kb_of_body(
    client: httpx.AsyncClient, target: str
) -> None:
    url = f"{target}/reply?status=500"
    config = {"url": url, "headers": {"content-type": "text/plain"}, "body": "{{input.text}}"}
    await create_workflow(client, _calling("wf_crashing_call", config))
    text = "Traceback: " + "y" * 9_989

    run = await _run_to_end(client, "wf_crashing_call", {"input": {"text": text}})

    step = run["steps"][0]
    assert run["status"] == "failed"
    assert run["error"]["message"] == f"HTTP 500 from {url}"
    assert step["output"]["status"] == 500
    assert step["output"]["headers"]["content-length"] == "10000"
    assert step["output"]["body"] == text[:4096] + "… (10,000 bytes)"


async def test_http_step_accepted_status_output_unchanged(
    client: httpx.AsyncClient, target: str
) -> None:
    url = f"{target}/reply?status=422"
    config = {"url": url, "json": {"ok": True}, "okStatus": [422]}
    await create_workflow(client, _calling("wf_accepted", config))

    run = await _run_to_end(client, "wf_accepted", {"input": {}})

    assert run["status"] == "completed"
    assert run["output"]["status"] == 422
    assert run["output"]["body"] == {"ok": True}


# -- queuedReason wherever a queued run is returned -----------------------------------------


async def test_queued_run_reason_same_in_201_list_and_detail(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_one_at_a_time", concurrency={"limit": 1})
    definition["steps"] = [{"id": "nap", "type": "sleep", "config": {"seconds": 300}}]
    await create_workflow(client, definition)
    run_url = "/api/v1/workflows/wf_one_at_a_time/run"

    first = await client.post(run_url, json={"input": {}})
    second = await client.post(run_url, json={"input": {}})
    third = await client.post(run_url, json={"input": {}})

    assert first.status_code == 201
    assert "queuedReason" not in first.json()["data"]
    reasons = []
    for position, started in enumerate((second, third), start=1):
        assert started.status_code == 201, started.text
        data = started.json()["data"]
        expected = {"kind": "concurrency_key", "key": None, "position": position, "limit": 1}
        assert data == {
            "runId": data["runId"],
            "status": "queued",
            "workflowId": "wf_one_at_a_time",
            "workflowVersion": 1,
            "queuedReason": expected,
        }
        reasons.append((data["runId"], expected))
    listed = (await client.get("/api/v1/runs", params={"status": "queued"})).json()["data"]
    assert [(r["id"], r["queuedReason"]) for r in listed] == reasons[::-1]
    for run_id, expected in reasons:
        detail = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
        assert (detail["status"], detail["queuedReason"]) == ("queued", expected)
    everything = (await client.get("/api/v1/runs")).json()["data"]
    first_id = first.json()["data"]["runId"]
    assert [r["queuedReason"] for r in everything if r["id"] == first_id] == [None]


# -- a body without the input wrapper gets a hint --------------------------------------------


async def test_run_body_bare_input_is_400_with_hint(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_hint"))

    response = await client.post("/api/v1/workflows/wf_hint/run", json={"customerId": "c1"})

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": 'Unknown field "customerId": the run\'s input goes in {"input": {...}}',
            "details": [{"path": ["customerId"], "message": "unknown field"}],
        },
    }
    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_run_body_unknown_field_beside_input_names_the_fields(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_hint"))

    response = await client.post(
        "/api/v1/workflows/wf_hint/run", json={"input": {"n": 1}, "inputs": {}, "stepEnv": {}}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] == (
        'Unknown fields "inputs", "stepEnv": a run request takes only '
        "input, env, connectionId, idempotencyKey, priority"
    )


@pytest.mark.parametrize("body", [b"", b"{}", b'{"input": {"n": 1}, "priority": 5}'])
async def test_run_body_known_fields_or_empty_starts_a_run(
    client: httpx.AsyncClient, body: bytes
) -> None:
    await create_workflow(client, simple_workflow("wf_hint"))

    response = await client.post("/api/v1/workflows/wf_hint/run", content=body)

    assert response.status_code == 201, response.text


async def test_batch_item_with_bare_input_fails_alone(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_hint"))

    response = await client.post(
        "/api/v1/workflows/wf_hint/run/batch", json={"runs": [{"n": 1}, {"input": {"n": 2}}]}
    )

    assert response.status_code == 200
    bad, good = response.json()["data"]
    assert bad == {
        "success": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": 'Unknown field "n": the run\'s input goes in {"input": {...}}',
            "details": [{"path": ["n"], "message": "unknown field"}],
        },
    }
    assert good["success"] is True


# -- unknown Liquid filters and tags are caught when the workflow is saved -------------------


async def test_workflow_with_unknown_filter_is_400_at_its_path(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_typo")
    definition["steps"][0]["config"]["mapping"] = {"n": "{{ input.n | tims: 2 }}"}

    response = await client.post("/api/v1/workflows", json=definition)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "Invalid workflow definition",
        "details": [
            {
                "path": ["steps", 0, "config", "mapping", "n"],
                "message": "Template error in '{{ input.n | tims: 2 }}': "
                "unknown filter 'tims' (did you mean 'times'?)",
            }
        ],
    }


async def test_workflow_update_with_unknown_tag_is_400_and_keeps_version(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_tagged"))
    definition = simple_workflow("wf_tagged", output={"text": "{% shout %}hi{% endshout %}"})

    response = await client.put("/api/v1/workflows/wf_tagged", json=definition)

    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail["path"] == ["output", "text"]
    assert "unexpected tag 'shout'" in detail["message"]
    stored = (await client.get("/api/v1/workflows/wf_tagged")).json()["data"]
    assert stored["version"] == 1


async def test_workflow_with_standard_and_flowgate_filters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    definition = simple_workflow("wf_filters")
    definition["steps"][0]["config"]["mapping"] = {
        "total": "{{ input.items | map: 'quantity * price' | sum | times: 1.08 | round: 2 }}",
        "names": "{{ input.items | map: 'name' | join: ', ' | upcase | default: 'none' }}",
        "raw": "{{ input | json }}",
    }

    await create_workflow(client, definition)
