"""Triggers (DESIGN §2, §3 "Shapes pinned down"): made through the API or a workflow's document.

Only ``api`` is accepted so far; ``webhook`` and ``schedule`` answer 400 naming the supported
types, as the definition's ``trigger:`` field does.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from flowgate.engine.definition import TRIGGER_TYPES
from tests.integration.conftest import create_workflow, simple_workflow

WIRE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TRIGGER_ID = re.compile(r"^trg_[0-9a-z]{26}$")


class _Matches:
    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(self.pattern.match(other))

    def __repr__(self) -> str:
        return f"<matching {self.pattern.pattern}>"


AN_ID = _Matches(TRIGGER_ID)
A_TIME = _Matches(WIRE_TIME)


async def _key(client: httpx.AsyncClient, scopes: list[str], **extra: Any) -> dict[str, str]:
    response = await client.post("/api/v1/keys", json={"name": "k", "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    return {"x-api-key": response.json()["data"]["key"]}


async def _add(client: httpx.AsyncClient, workflow: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/api/v1/workflows/{workflow}/triggers", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _listed(client: httpx.AsyncClient, workflow: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/workflows/{workflow}/triggers")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_create_api_trigger_returns_201_with_the_design_shape(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post(
        "/api/v1/workflows/wf_a/triggers", json={"type": "api", "name": "from the CRM"}
    )

    assert response.status_code == 201, response.text
    assert response.json() == {
        "success": True,
        "data": {
            "id": AN_ID,
            "type": "api",
            "name": "from the CRM",
            "workflowId": "wf_a",
            "enabled": True,
            "source": "api",
            "url": None,
            "signingSecret": None,
            "nextRunAt": None,
            "createdAt": A_TIME,
        },
    }


async def test_create_trigger_by_workflow_name_returns_201(client: httpx.AsyncClient) -> None:
    workflow = await create_workflow(client, simple_workflow("wf_named"))

    created = await _add(client, workflow["name"], {"type": "api"})

    assert (created["workflowId"], created["name"]) == ("wf_named", None)


async def test_list_triggers_returns_them_without_the_secret(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    first = await _add(client, "wf_a", {"type": "api", "name": "one"})
    second = await _add(client, "wf_a", {"type": "api", "name": "two"})

    listed = await _listed(client, "wf_a")

    assert listed == [
        {k: v for k, v in first.items() if k != "signingSecret"},
        {k: v for k, v in second.items() if k != "signingSecret"},
    ]


async def test_delete_trigger_removes_it(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    created = await _add(client, "wf_a", {"type": "api"})

    response = await client.delete(f"/api/v1/triggers/{created['id']}")
    again = await client.delete(f"/api/v1/triggers/{created['id']}")

    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "data": {"id": created["id"], "deleted": True}}
    assert await _listed(client, "wf_a") == []
    assert again.status_code == 404
    assert again.json()["error"] == {"code": "NOT_FOUND", "message": "Trigger not found"}


@pytest.mark.parametrize(
    "body",
    [{"type": "email"}],
    ids=["unknown"],
)
async def test_create_trigger_type_not_supported_yet_is_400_naming_supported(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post("/api/v1/workflows/wf_a/triggers", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "Invalid trigger",
        "details": [
            {
                "path": ["type"],
                "message": f"unsupported trigger type {body['type']!r}; supported: "
                + ", ".join(TRIGGER_TYPES),
            }
        ],
    }
    assert await _listed(client, "wf_a") == []


async def test_create_api_trigger_with_a_cron_is_400_naming_it(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post(
        "/api/v1/workflows/wf_a/triggers", json={"type": "api", "cron": "0 * * * *"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"] == [
        {"path": ["cron"], "message": "not used by api triggers"}
    ]


async def test_create_trigger_unknown_workflow_returns_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows/wf_missing/triggers", json={"type": "api"})
    listed = await client.get("/api/v1/workflows/wf_missing/triggers")

    assert (response.status_code, listed.status_code) == (404, 404)
    assert response.json()["error"] == {"code": "NOT_FOUND", "message": "Workflow not found"}


async def test_triggers_of_another_project_return_404(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    mine = await _add(client, "wf_a", {"type": "api"})
    project = (await client.post("/api/v1/projects", json={"name": "B"})).json()["data"]
    other = await _key(client, ["admin"], projectId=project["id"])

    created = await client.post(
        "/api/v1/workflows/wf_a/triggers", json={"type": "api"}, headers=other
    )
    listed = await client.get("/api/v1/workflows/wf_a/triggers", headers=other)
    deleted = await client.delete(f"/api/v1/triggers/{mine['id']}", headers=other)

    assert [r.status_code for r in (created, listed, deleted)] == [404, 404, 404]
    assert deleted.json()["error"] == {"code": "NOT_FOUND", "message": "Trigger not found"}
    assert [t["id"] for t in await _listed(client, "wf_a")] == [mine["id"]]


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        (["workflows:read"], "POST", "/api/v1/workflows/wf_a/triggers"),
        (["workflows:read"], "DELETE", "/api/v1/triggers/{id}"),
        (["runs:read"], "GET", "/api/v1/workflows/wf_a/triggers"),
    ],
    ids=["read-create", "read-delete", "runs-read-list"],
)
async def test_trigger_routes_without_scope_return_403(
    client: httpx.AsyncClient, scopes: list[str], method: str, path: str
) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    existing = await _add(client, "wf_a", {"type": "api"})
    key = await _key(client, scopes)

    response = await client.request(
        method,
        path.format(id=existing["id"]),
        json={"type": "api"} if method == "POST" else None,
        headers=key,
    )

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert [t["id"] for t in await _listed(client, "wf_a")] == [existing["id"]]


async def test_trigger_routes_with_workflow_scopes_succeed(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    writer = await _key(client, ["workflows:write"])
    reader = await _key(client, ["workflows:read"])

    created = await client.post(
        "/api/v1/workflows/wf_a/triggers", json={"type": "api"}, headers=writer
    )
    listed = await client.get("/api/v1/workflows/wf_a/triggers", headers=reader)
    deleted = await client.delete(
        f"/api/v1/triggers/{created.json()['data']['id']}", headers=writer
    )

    assert [r.status_code for r in (created, listed, deleted)] == [201, 200, 200]
    assert [t["id"] for t in listed.json()["data"]] == [created.json()["data"]["id"]]


# --- the document's trigger field ---------------------------------------------------------------


async def test_create_workflow_with_trigger_field_makes_definition_triggers(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(
        client,
        simple_workflow("wf_a", trigger=[{"type": "api"}, {"type": "api", "name": "crm"}]),
    )

    listed = await _listed(client, "wf_a")

    # Made in one millisecond: their order is the ids' random part, not the document's.
    assert sorted((t["type"], t["name"] or "", t["source"]) for t in listed) == [
        ("api", "", "definition"),
        ("api", "crm", "definition"),
    ]


async def test_update_workflow_replaces_definition_triggers_keeping_matches(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(
        client, simple_workflow("wf_a", trigger=[{"type": "api"}, {"type": "api", "name": "old"}])
    )
    before = {t["name"]: t for t in await _listed(client, "wf_a")}

    response = await client.put(
        "/api/v1/workflows/wf_a",
        json=simple_workflow("wf_a", trigger=[{"type": "api"}, {"type": "api", "name": "new"}]),
    )
    after = {t["name"]: t for t in await _listed(client, "wf_a")}

    assert response.status_code == 200, response.text
    assert set(after) == {None, "new"}
    assert after[None] == before[None]
    assert after["new"]["id"] not in {t["id"] for t in before.values()}
    assert after["new"]["source"] == "definition"


async def test_update_workflow_without_trigger_field_removes_definition_triggers(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, simple_workflow("wf_a", trigger={"type": "api"}))

    response = await client.put("/api/v1/workflows/wf_a", json=simple_workflow("wf_a"))

    assert response.status_code == 200, response.text
    assert await _listed(client, "wf_a") == []


async def test_update_workflow_leaves_api_triggers_alone(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a", trigger={"type": "api"}))
    made = await _add(client, "wf_a", {"type": "api", "name": "by hand"})

    response = await client.put(
        "/api/v1/workflows/wf_a", json=simple_workflow("wf_a", trigger={"type": "api", "name": "x"})
    )
    listed = await _listed(client, "wf_a")

    assert response.status_code == 200, response.text
    assert {k: v for k, v in made.items() if k != "signingSecret"} in listed
    assert sorted((t["name"], t["source"]) for t in listed) == [
        ("by hand", "api"),
        ("x", "definition"),
    ]


async def test_delete_definition_trigger_is_409_and_keeps_it(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a", trigger={"type": "api"}))
    [trigger] = await _listed(client, "wf_a")

    response = await client.delete(f"/api/v1/triggers/{trigger['id']}")

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "CONFLICT"
    assert await _listed(client, "wf_a") == [trigger]


async def test_create_workflow_trigger_with_unused_field_is_400_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    definition = simple_workflow("wf_a", trigger={"type": "api", "timezone": "Europe/Berlin"})

    response = await client.post("/api/v1/workflows", json=definition)
    missing = await client.get("/api/v1/workflows/wf_a")

    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "Invalid workflow definition",
        "details": [{"path": ["trigger", "timezone"], "message": "not used by api triggers"}],
    }
    assert missing.status_code == 404
