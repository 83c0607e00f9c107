"""Client-chosen workflow and connection ids are unique per project (DESIGN §7 "Ids"): two
projects may both have ``wf_daily_report``, and nothing reveals another project's ids."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from flowgate.store import open_store
from flowgate.store.migrate import alembic_config, upgrade_database
from tests.integration.conftest import create_workflow, simple_workflow


async def _other_project(client: httpx.AsyncClient) -> dict[str, str]:
    project = (await client.post("/api/v1/projects", json={"name": "Other"})).json()["data"]
    key = (
        await client.post(
            "/api/v1/keys",
            json={"name": "other", "scopes": ["admin"], "projectId": project["id"]},
        )
    ).json()["data"]["key"]
    return {"x-api-key": key}


async def test_two_projects_each_have_their_own_wf_daily_report(
    client: httpx.AsyncClient,
) -> None:
    other = await _other_project(client)
    mine = simple_workflow("wf_daily_report")
    theirs = simple_workflow("wf_daily_report")
    theirs["steps"][0]["config"]["mapping"] = {"owner": "other"}
    await create_workflow(client, mine)

    created = await client.post("/api/v1/workflows", json=theirs, headers=other)
    their_run = await client.post(
        "/api/v1/workflows/wf_daily_report/run",
        json={"input": {"n": 1}},
        headers={**other, "x-api-wait": "10"},
    )
    my_run = await client.post(
        "/api/v1/workflows/wf_daily_report/run",
        json={"input": {"n": 1}},
        headers={"x-api-wait": "10"},
    )
    their_versions = await client.get("/api/v1/workflows/wf_daily_report/versions", headers=other)

    assert created.status_code == 201, created.text
    assert their_run.json()["data"]["output"] == {"owner": "other"}
    assert my_run.json()["data"]["output"] == {"n": 1}
    assert [v["definition"]["steps"] for v in their_versions.json()["data"]] == [theirs["steps"]]


async def test_duplicate_workflow_id_in_the_same_project_is_409(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_daily_report"))
    again = simple_workflow("wf_daily_report")
    again["name"] = "another name"

    response = await client.post("/api/v1/workflows", json=again)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


async def test_two_projects_each_have_their_own_connection_id(client: httpx.AsyncClient) -> None:
    other = await _other_project(client)
    body = {
        "id": "conn_production_stripe",
        "name": "Stripe",
        "type": "stripe",
        "credentials": {"secretKey": "sk_test_mine"},
    }
    mine = await client.post("/api/v1/connections", json=body)
    theirs = await client.post(
        "/api/v1/connections", json={**body, "name": "Their Stripe"}, headers=other
    )
    listed = await client.get("/api/v1/connections", headers=other)

    assert mine.status_code == 201
    assert theirs.status_code == 201, theirs.text
    assert [c["name"] for c in listed.json()["data"]] == ["Their Stripe"]


async def _migrate_to(url: str, revision: str) -> None:
    store = open_store(url)
    try:
        await store.migrate(lambda conn: command.upgrade(alembic_config(conn), revision))
    finally:
        await store.close()


def _seed(conn: Connection) -> None:
    now = 1_700_000_000_000
    conn.execute(
        sa.text(
            "INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_a', 'org', 'A', :n)"
        ),
        {"n": now},
    )
    conn.execute(
        sa.text(
            "INSERT INTO workflows (id, project_id, name, status, version, definition,"
            " created_at, updated_at) VALUES ('wf_kept', 'prj_a', 'kept', 'active', 2,"
            " '{\"steps\": []}', :n, :n)"
        ),
        {"n": now},
    )
    for version in (1, 2):
        conn.execute(
            sa.text(
                "INSERT INTO workflow_versions (workflow_id, version, definition, created_at)"
                " VALUES ('wf_kept', :v, '{\"steps\": []}', :n)"
            ),
            {"v": version, "n": now},
        )


async def test_migration_to_ids_per_project_keeps_workflows_and_versions(
    empty_database_url: str,
) -> None:
    await _migrate_to(empty_database_url, "0004")
    store = open_store(empty_database_url)
    try:
        await store.migrate(_seed)
        await upgrade_database(store)
        versions = await store.list_workflow_versions("prj_a", "wf_kept")
        workflow = await store.get_workflow("prj_a", "wf_kept")
    finally:
        await store.close()

    assert workflow is not None
    assert workflow["version"] == 2
    assert [(v["project_id"], v["version"]) for v in versions] == [("prj_a", 2), ("prj_a", 1)]
