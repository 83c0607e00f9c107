"""Nothing crosses projects: another project's key gets 404, never 403, on every route."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.conftest import create_workflow, simple_workflow

PARAM = re.compile(r"\{(\w+)\}")
#: Bodies valid enough that only the foreign id can make the request fail.
BODIES = {"/api/v1/workflows/{workflow_id}/run/batch": {"runs": [{}]}}


async def _project_b_admin(client: httpx.AsyncClient) -> str:
    project = await client.post("/api/v1/projects", json={"name": "B"})
    assert project.status_code == 201
    key = await client.post(
        "/api/v1/keys",
        json={"name": "b-admin", "scopes": ["admin"], "projectId": project.json()["data"]["id"]},
    )
    assert key.status_code == 201
    return str(key.json()["data"]["key"])


async def test_foreign_key_gets_404_on_every_route_with_an_id(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    run = await client.post("/api/v1/workflows/wf_a/run", headers={"x-api-wait": "true"})
    a_key = await client.post("/api/v1/keys", json={"name": "a", "scopes": ["runs:read"]})
    connection = await client.post(
        "/api/v1/connections",
        json={"name": "c", "type": "http", "config": {"baseUrl": "https://a.test"}},
    )
    ids = {
        "workflow_id": "wf_a",
        "run_id": run.json()["data"]["id"],
        "key_id": a_key.json()["data"]["id"],
        "connection_id": connection.json()["data"]["id"],
        "project_id": "prj_default",
    }
    b_key = await _project_b_admin(client)
    paths = (await client.get("/openapi.json")).json()["paths"]
    checked = []
    for template, operations in paths.items():
        params = PARAM.findall(template)
        if not params or not template.startswith("/api/"):
            continue
        unknown = set(params) - set(ids)
        assert not unknown, f"add an object for {unknown} of {template} to this walk"
        path = template.format(**ids)
        for method in sorted(operations):
            body = BODIES.get(template, {})
            response = await client.request(method, path, json=body, headers={"x-api-key": b_key})
            checked.append((method, template))
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["success"] is False
            assert response.json()["error"]["code"] == "NOT_FOUND"
    assert len(checked) >= 15


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
