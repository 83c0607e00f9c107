"""A workflow's inbox (DESIGN §11): every webhook delivery and dialect call for one workflow,
newest first, with its source — and deliveries kept before dialects existed keep showing."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from flowgate.store import open_store
from flowgate.store.base import Page
from flowgate.store.migrate import alembic_config, upgrade_database
from tests.integration.conftest import create_workflow, simple_workflow


async def _webhook(client: httpx.AsyncClient) -> dict[str, str]:
    await create_workflow(client, simple_workflow("wf_inbox"))
    created = await client.post("/api/v1/workflows/wf_inbox/triggers", json={"type": "webhook"})
    assert created.status_code == 201, created.text
    hook: dict[str, str] = created.json()["data"]
    hook["path"] = "/hooks/" + hook["url"].rsplit("/hooks/", 1)[1]
    return hook


async def test_webhook_deliveries_show_in_their_workflows_inbox_with_their_source(
    client: httpx.AsyncClient,
) -> None:
    hook = await _webhook(client)
    first = await client.post(hook["path"], json={"n": 1}, headers={"x-api-key": "fgk_secret"})
    second = await client.post(hook["path"], json={"n": 2})

    listed = await client.get("/api/v1/workflows/wf_inbox/deliveries", params={"limit": 1})
    rest = await client.get(
        "/api/v1/workflows/wf_inbox/deliveries", params={"cursor": listed.json()["nextCursor"]}
    )

    assert (first.status_code, second.status_code) == (202, 202)
    assert listed.status_code == 200, listed.text
    [newest] = listed.json()["data"]
    [oldest] = rest.json()["data"]
    assert newest["runId"] == second.json()["data"]["runId"]
    assert oldest["runId"] == first.json()["data"]["runId"]
    assert {k: oldest[k] for k in ("triggerId", "workflowId", "source", "verdict")} == {
        "triggerId": hook["id"],
        "workflowId": "wf_inbox",
        "source": "webhook",
        "verdict": "accepted",
    }
    assert oldest["headers"]["x-api-key"] == "***"
    assert rest.json()["hasMore"] is False


async def test_a_webhook_delivery_is_replayed_through_its_trigger_not_its_workflow(
    client: httpx.AsyncClient,
) -> None:
    hook = await _webhook(client)
    await client.post(hook["path"], json={"n": 1})
    [delivery] = (await client.get("/api/v1/workflows/wf_inbox/deliveries")).json()["data"]

    refused = await client.post(f"/api/v1/workflows/wf_inbox/deliveries/{delivery['id']}/replay")

    assert refused.status_code == 400, refused.text
    expected = f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay"
    assert expected in refused.json()["error"]["message"]


async def test_inbox_of_an_unknown_workflow_or_delivery_is_404(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_inbox"))

    no_workflow = await client.get("/api/v1/workflows/wf_nothing/deliveries")
    no_delivery = await client.post("/api/v1/workflows/wf_inbox/deliveries/dlv_nothing/replay")

    assert no_workflow.status_code == 404
    assert no_workflow.json()["error"]["message"] == "Workflow not found"
    assert no_delivery.status_code == 404
    assert no_delivery.json()["error"]["message"] == "Delivery not found"


def _seed_webhook_delivery(conn: Connection) -> None:
    now = 1_700_000_000_000
    statements = [
        "INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_a', 'org', 'A', :n)",
        "INSERT INTO workflows (project_id, id, name, status, version, definition, created_at,"
        " updated_at) VALUES ('prj_a', 'wf_old', 'old', 'active', 1, '{\"steps\": []}', :n, :n)",
        "INSERT INTO triggers (project_id, id, workflow_id, type, enabled, source, config,"
        " token, created_at, updated_at) VALUES ('prj_a', 'trg_old', 'wf_old', 'webhook', true,"
        " 'api', '{}', 'tok', :n, :n)",
        "INSERT INTO trigger_deliveries (project_id, id, trigger_id, received_at, method, path,"
        " query, headers, verdict) VALUES ('prj_a', 'dlv_old', 'trg_old', :n, 'POST',"
        " '/hooks/tok', '{}', '{}', 'accepted')",
    ]
    for statement in statements:
        conn.execute(sa.text(statement), {"n": now})


async def test_migration_gives_earlier_deliveries_their_workflow_and_source(
    empty_database_url: str,
) -> None:
    store = open_store(empty_database_url)
    try:
        await store.migrate(lambda conn: command.upgrade(alembic_config(conn), "0009"))
        await store.migrate(_seed_webhook_delivery)
        await upgrade_database(store)
        [row] = await store.list_workflow_deliveries("prj_a", "wf_old", Page(limit=10))
    finally:
        await store.close()

    assert (row["id"], row["source"], row["workflow_id"]) == ("dlv_old", "webhook", "wf_old")
