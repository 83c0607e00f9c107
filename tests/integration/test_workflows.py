"""Workflow definitions: written as JSON or YAML, checked, versioned, activated."""

from __future__ import annotations

import httpx

from tests.integration.conftest import create_workflow, simple_workflow


async def test_create_workflow_defaults_to_draft_version_1(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/workflows", json={"name": "Plain", "steps": simple_workflow("wf_x")["steps"]}
    )

    assert response.status_code == 201
    data = response.json()["data"]
    assert data["id"].startswith("wf_")
    assert data["status"] == "draft"
    assert data["version"] == 1
    assert data["projectId"] == "prj_default"
    assert data["steps"][0]["id"] == "only"


async def test_create_workflow_yaml_body_is_read_as_yaml_1_2(client: httpx.AsyncClient) -> None:
    yaml_text = """
id: wf_yaml
name: From YAML
env: {COUNTRY: no, SINCE: 2024-01-15}
steps:
  - id: only
    type: transform
    config: {mapping: {switch: on}}
"""
    response = await client.post(
        "/api/v1/workflows", content=yaml_text, headers={"content-type": "application/yaml"}
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["env"] == {"COUNTRY": "no", "SINCE": "2024-01-15"}
    assert data["steps"][0]["config"] == {"mapping": {"switch": "on"}}


async def test_create_workflow_lists_every_problem(client: httpx.AsyncClient) -> None:
    definition = {
        "name": "Broken",
        "inputSchema": {"type": "objekt"},
        "steps": [
            {"id": "a", "type": "teleport", "config": {}},
            {"id": "a", "type": "transform", "config": {"mapping": "{{ input.x | }}"}},
            {"id": "c", "type": "transform", "config": {"mapping": "{{steps.nowhere.output}}"}},
        ],
    }

    response = await client.post("/api/v1/workflows", json=definition)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] == "Invalid workflow definition"
    paths = [tuple(d["path"]) for d in error["details"]]
    assert ("steps", 0, "type") in paths
    assert ("steps", 1, "id") in paths
    assert any(p[:4] == ("steps", 1, "config", "mapping") for p in paths)
    assert ("steps", 2) in paths
    assert any(p[0] == "inputSchema" for p in paths)
    messages = " ".join(d["message"] for d in error["details"])
    assert "teleport" in messages
    assert "nowhere" in messages


async def test_create_workflow_taken_name_returns_409(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_first"))
    clash = simple_workflow("wf_second")
    clash["name"] = simple_workflow("wf_first")["name"]

    response = await client.post("/api/v1/workflows", json=clash)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


async def test_workflow_names_are_exact(client: httpx.AsyncClient) -> None:
    definition = simple_workflow("wf_spaced")
    definition["name"] = " Report  Ünïcode "
    await create_workflow(client, definition)

    exact = await client.get("/api/v1/workflows/ Report  Ünïcode ")
    trimmed = await client.get("/api/v1/workflows/Report  Ünïcode")
    lower = await client.get("/api/v1/workflows/ report  ünïcode ")

    assert exact.status_code == 200
    assert exact.json()["data"]["name"] == " Report  Ünïcode "
    assert trimmed.status_code == 404
    assert lower.status_code == 404


async def test_update_workflow_changed_definition_makes_new_version(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_v"))
    changed = simple_workflow("wf_v")
    changed["steps"][0]["config"]["mapping"] = {"m": "{{input.n | plus: 1}}"}

    same = await client.put("/api/v1/workflows/wf_v", json=simple_workflow("wf_v"))
    updated = await client.put("/api/v1/workflows/wf_v", json=changed)
    versions = await client.get("/api/v1/workflows/wf_v/versions")

    assert same.json()["data"]["version"] == 1
    assert updated.status_code == 200
    assert updated.json()["data"]["version"] == 2
    assert [v["version"] for v in versions.json()["data"]] == [2, 1]


async def test_run_pins_the_version_it_started_on(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_pin"))
    first = await client.post("/api/v1/workflows/wf_pin/run", json={"input": {"n": 1}})
    changed = simple_workflow("wf_pin")
    changed["steps"][0]["config"]["mapping"] = {"v2": True}
    await client.put("/api/v1/workflows/wf_pin", json=changed)

    second = await client.post(
        "/api/v1/workflows/wf_pin/run", json={"input": {"n": 1}}, headers={"x-api-wait": "true"}
    )
    first_run = await client.get(f"/api/v1/runs/{first.json()['data']['runId']}?waitSecs=5")

    assert first.json()["data"]["workflowVersion"] == 1
    assert first_run.json()["data"]["output"] == {"n": 1}
    assert second.json()["data"]["workflowVersion"] == 2
    assert second.json()["data"]["output"] == {"v2": True}


async def test_workflow_status_transitions(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_s", status="draft"))

    draft_pause = await client.post("/api/v1/workflows/wf_s/pause")
    activated = await client.post("/api/v1/workflows/wf_s/activate")
    paused = await client.post("/api/v1/workflows/wf_s/pause")
    archived = await client.delete("/api/v1/workflows/wf_s")
    run = await client.post("/api/v1/workflows/wf_s/run")

    assert draft_pause.status_code == 409
    assert activated.json()["data"]["status"] == "active"
    assert paused.json()["data"]["status"] == "paused"
    assert archived.json()["data"]["status"] == "archived"
    assert run.json()["error"] == {
        "code": "INVALID_STATUS",
        "message": "Workflow must be active to run. Current status: archived",
    }


async def test_list_workflows_paginates(client: httpx.AsyncClient) -> None:
    for index in range(3):
        await create_workflow(client, simple_workflow(f"wf_list_{index}"))

    first = (await client.get("/api/v1/workflows", params={"limit": 2})).json()
    rest = (
        await client.get("/api/v1/workflows", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()

    assert first["hasMore"] is True
    assert [w["id"] for w in first["data"] + rest["data"]] == [
        "wf_list_2",
        "wf_list_1",
        "wf_list_0",
    ]
    assert rest["hasMore"] is False


async def test_client_chosen_id_must_match_pattern(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows", json=simple_workflow("bad id"))

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"path": ["id"], "message": "must match ^wf_[A-Za-z0-9_-]{1,64}$"}
    ]
