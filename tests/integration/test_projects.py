"""Nothing crosses projects (the walk over every route with an id is in test_auth.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import create_workflow, simple_workflow


async def _project_b_admin(client: httpx.AsyncClient) -> str:
    project = await client.post("/api/v1/projects", json={"name": "B"})
    assert project.status_code == 201
    key = await client.post(
        "/api/v1/keys",
        json={"name": "b-admin", "scopes": ["admin"], "projectId": project.json()["data"]["id"]},
    )
    assert key.status_code == 201
    return str(key.json()["data"]["key"])


async def test_project_b_sees_only_itself_and_reuses_names(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    b_key = await _project_b_admin(client)
    headers = {"x-api-key": b_key}

    projects = await client.get("/api/v1/projects", headers=headers)
    same_name = await client.post(
        "/api/v1/workflows",
        json={"name": simple_workflow("wf_a")["name"], "steps": simple_workflow("x")["steps"]},
        headers=headers,
    )
    runs = await client.get("/api/v1/runs", headers=headers)

    assert [p["name"] for p in projects.json()["data"]] == ["B"]
    assert same_name.status_code == 201
    assert runs.json()["data"] == []


@pytest.mark.parametrize("scopes", [["runs:read"], ["workflows:execute"]])
async def test_non_admin_cannot_create_projects_or_keys(
    client: httpx.AsyncClient, scopes: list[str]
) -> None:
    key = (await client.post("/api/v1/keys", json={"name": "k", "scopes": scopes})).json()["data"]
    headers = {"x-api-key": key["key"]}

    project = await client.post("/api/v1/projects", json={"name": "X"}, headers=headers)
    new_key = await client.post(
        "/api/v1/keys", json={"name": "k2", "scopes": ["admin"]}, headers=headers
    )

    assert project.status_code == 403
    assert new_key.status_code == 403


async def test_project_quota_per_day_answers_429(client: httpx.AsyncClient) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "Q"})).json()["data"]
    key = (
        await client.post(
            "/api/v1/keys",
            json={"name": "q", "scopes": ["admin"], "projectId": project["id"]},
        )
    ).json()["data"]["key"]
    headers = {"x-api-key": key}
    await client.post("/api/v1/workflows", json=simple_workflow("wf_q"), headers=headers)

    patched = await client.patch(f"/api/v1/projects/{project['id']}", json={"runQuotaPerDay": 2})
    tenant_patch = await client.patch(
        f"/api/v1/projects/{project['id']}", json={"runQuotaPerDay": 99}, headers=headers
    )
    statuses = [
        (await client.post("/api/v1/workflows/wf_q/run", headers=headers)).status_code
        for _ in range(3)
    ]
    over = await client.post("/api/v1/workflows/wf_q/run", headers=headers)

    assert patched.json()["data"]["runQuotaPerDay"] == 2
    assert tenant_patch.status_code == 403
    assert statuses == [201, 201, 429]
    assert over.json()["error"]["code"] == "QUOTA_EXCEEDED"
