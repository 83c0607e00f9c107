"""API keys, scopes and projects (DESIGN §2, §3, §7).

A key is random, shown once, revocable and may expire; scopes gate what it can do (403); nothing
crosses projects: another project's key gets 404, never 403, for every object of this one.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow

WIRE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: A path parameter and its optional converter: ``findall`` gives (name, ":int" or "") pairs.
PATH_PARAM = re.compile(r"\{(\w+)(:\w+)?\}")
KEY_FIELDS = (
    "id",
    "name",
    "key",
    "prefix",
    "scopes",
    "projectId",
    "createdAt",
    "expiresAt",
    "rateLimitPerMinute",
)


class _Text:
    """Equal to any non-empty string: stands for messages the contract does not pin."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any text>"


TEXT = _Text()
UNAUTHORIZED = {"code": "UNAUTHORIZED", "message": TEXT}
FORBIDDEN = {"code": "FORBIDDEN", "message": TEXT}
NOT_FOUND = {"code": "NOT_FOUND", "message": TEXT}


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error of a failure envelope (its optional ``details`` left out)."""
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error = dict(body["error"])
    error.pop("details", None)
    return error


def wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def create_key(client: httpx.AsyncClient, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/keys", json={"name": "k", "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def as_key(secret: str) -> dict[str, str]:
    return {"x-api-key": secret}


# --- authentication ---------------------------------------------------------------------------


async def test_request_without_key_returns_401(server: ThreadedServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.get("/api/v1/workflows")

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)


async def test_request_unknown_key_returns_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows", headers=as_key("fgk_not_a_real_key_at_all"))

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)


async def test_request_empty_key_returns_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows", headers=as_key(""))

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)


async def test_request_bearer_key_returns_200(server: ThreadedServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.get(
            "/api/v1/workflows", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "data": [], "hasMore": False, "nextCursor": None}


async def test_request_bearer_unknown_key_returns_401(server: ThreadedServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.get(
            "/api/v1/workflows", headers={"Authorization": "Bearer fgk_unknown"}
        )

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)


@pytest.mark.parametrize("header", ["X-API-KEY", "X-Api-Key", "x-api-key"])
async def test_request_key_header_any_case_returns_200(server: ThreadedServer, header: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.get("/api/v1/workflows", headers={header: ADMIN_KEY})

    assert response.status_code == 200, response.text


# --- keys -------------------------------------------------------------------------------------


async def test_create_key_returns_201_with_the_secret_once(client: httpx.AsyncClient) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)

    response = await client.post(
        "/api/v1/keys",
        json={
            "name": "ci deploys",
            "scopes": ["workflows:execute", "runs:read"],
            "expiresAt": wire_time(expires),
            "rateLimitPerMinute": 42,
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert set(KEY_FIELDS) <= set(data), data
    assert {name: data[name] for name in KEY_FIELDS} == {
        "id": data["id"],
        "name": "ci deploys",
        "key": data["key"],
        "prefix": data["prefix"],
        "scopes": ["runs:read", "workflows:execute"],
        "projectId": "prj_default",
        "createdAt": data["createdAt"],
        "expiresAt": wire_time(expires),
        "rateLimitPerMinute": 42,
    }
    assert data["key"].startswith("fgk_")
    assert data["key"].startswith(data["prefix"])
    assert len(data["prefix"]) < len(data["key"])
    assert WIRE_TIME.match(data["createdAt"]), data["createdAt"]


async def test_create_key_secret_carries_at_least_128_random_bits(
    client: httpx.AsyncClient,
) -> None:
    secrets = [(await create_key(client, ["runs:read"]))["key"] for _ in range(5)]

    random_parts = [secret.removeprefix("fgk_") for secret in secrets]
    alphabet = set("".join(random_parts))
    if alphabet <= set(string.hexdigits.lower()):
        bits_per_char = 4.0
    elif alphabet <= set(string.ascii_letters + string.digits + "-_"):
        bits_per_char = 6.0
    else:
        bits_per_char = math.log2(len(set(string.printable)))
    assert all(secret.startswith("fgk_") for secret in secrets)
    assert len(set(secrets)) == len(secrets)
    assert min(len(part) for part in random_parts) * bits_per_char >= 128, secrets


async def test_new_key_authenticates_returns_200(client: httpx.AsyncClient) -> None:
    key = await create_key(client, ["runs:read"])

    response = await client.get("/api/v1/runs", headers=as_key(key["key"]))

    assert response.status_code == 200, response.text


async def test_list_keys_never_shows_a_secret(client: httpx.AsyncClient) -> None:
    created = [await create_key(client, [scope]) for scope in ("runs:read", "admin")]

    response = await client.get("/api/v1/keys")

    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert {key["id"] for key in created} <= {key["id"] for key in listed}
    assert all("key" not in key for key in listed), listed
    for key in created:
        assert key["key"] not in response.text
    assert ADMIN_KEY not in response.text


async def test_list_keys_shows_the_created_fields(client: httpx.AsyncClient) -> None:
    created = await create_key(client, ["runs:read"], rateLimitPerMinute=7)

    listed = (await client.get("/api/v1/keys")).json()["data"]

    mine = next(key for key in listed if key["id"] == created["id"])
    expected = {name: created[name] for name in KEY_FIELDS if name != "key"}
    assert {name: mine[name] for name in expected} == expected


async def test_revoke_key_returns_200(client: httpx.AsyncClient) -> None:
    key = await create_key(client, ["runs:read"])

    response = await client.delete(f"/api/v1/keys/{key['id']}")

    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    assert response.json()["data"]["id"] == key["id"]
    assert "key" not in response.json()["data"]


async def test_revoked_key_returns_401(client: httpx.AsyncClient) -> None:
    key = await create_key(client, ["runs:read"])
    assert (await client.get("/api/v1/runs", headers=as_key(key["key"]))).status_code == 200

    await client.delete(f"/api/v1/keys/{key['id']}")
    response = await client.get("/api/v1/runs", headers=as_key(key["key"]))

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)


async def test_revoke_unknown_key_returns_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/keys/key_does_not_exist")

    assert (response.status_code, error_of(response)) == (404, NOT_FOUND)


async def test_create_key_expired_returns_400(client: httpx.AsyncClient) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)

    response = await client.post(
        "/api/v1/keys", json={"name": "old", "scopes": ["runs:read"], "expiresAt": wire_time(past)}
    )

    assert response.status_code == 400, response.text
    assert error_of(response) == {"code": "INVALID_REQUEST", "message": TEXT}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "scopes": ["runs:read", "no:such-scope"]},
        {"name": "k", "scopes": []},
        {"name": "k", "scopes": "admin"},
        {"name": "", "scopes": ["runs:read"]},
        {"scopes": ["runs:read"]},
        {"name": "k", "scopes": ["runs:read"], "expiresAt": "next tuesday"},
        {"name": "k", "scopes": ["runs:read"], "rateLimitPerMinute": "many"},
    ],
    ids=[
        "unknown-scope",
        "no-scopes",
        "scopes-not-list",
        "empty-name",
        "no-name",
        "bad-expiry",
        "bad-rate-limit",
    ],
)
async def test_create_key_invalid_body_returns_400(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/keys", json=body)

    assert response.status_code == 400, response.text
    assert error_of(response) == {"code": "INVALID_REQUEST", "message": TEXT}


async def test_key_past_its_expiry_returns_401(client: httpx.AsyncClient) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    key = await create_key(client, ["runs:read"], expiresAt=wire_time(expires))
    headers = as_key(key["key"])

    async def refused() -> httpx.Response | None:
        response = await client.get("/api/v1/runs", headers=headers)
        return response if response.status_code != 200 else None

    response = await wait_until(refused, timeout=15, interval=0.2)

    assert (response.status_code, error_of(response)) == (401, UNAUTHORIZED)
    assert datetime.now(UTC) >= expires


# --- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body"),
    [
        (["runs:read"], "POST", "/api/v1/workflows/wf_a/run", {"input": {"n": 1}}),
        (["runs:read"], "POST", "/api/v1/workflows", simple_workflow("wf_new")),
        (["runs:read"], "POST", "/api/v1/keys", {"name": "k", "scopes": ["runs:read"]}),
        (["workflows:execute"], "POST", "/api/v1/keys", {"name": "k", "scopes": ["runs:read"]}),
        (["workflows:read"], "PUT", "/api/v1/workflows/wf_a", simple_workflow("wf_a")),
        (["workflows:read"], "POST", "/api/v1/workflows/wf_a/pause", {}),
        (["workflows:execute"], "POST", "/api/v1/workflows", simple_workflow("wf_new")),
        (["runs:read"], "POST", "/api/v1/runs/cancel", {"dryRun": True}),
        (["runs:read"], "GET", "/api/v1/keys", None),
    ],
    ids=[
        "read-runs-start-run",
        "read-runs-create-workflow",
        "read-runs-create-key",
        "execute-create-key",
        "read-workflows-update-workflow",
        "read-workflows-pause",
        "execute-create-workflow",
        "read-runs-bulk-cancel",
        "read-runs-list-keys",
    ],
)
async def test_key_without_scope_returns_403(
    client: httpx.AsyncClient,
    scopes: list[str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    key = await create_key(client, scopes)

    response = await client.request(method, path, json=body, headers=as_key(key["key"]))

    assert (response.status_code, error_of(response)) == (403, FORBIDDEN)


async def test_key_without_scope_changes_nothing(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    key = await create_key(client, ["runs:read"])

    await client.post("/api/v1/workflows/wf_a/run", headers=as_key(key["key"]))

    runs = (await client.get("/api/v1/runs")).json()["data"]
    assert runs == []


async def test_runs_read_key_lists_runs_returns_200(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    started = (await client.post("/api/v1/workflows/wf_a/run", json={"input": {"n": 1}})).json()
    key = await create_key(client, ["runs:read"])

    response = await client.get("/api/v1/runs", headers=as_key(key["key"]))

    assert response.status_code == 200, response.text
    assert [run["id"] for run in response.json()["data"]] == [started["data"]["runId"]]


async def test_execute_key_starts_run_returns_201(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    key = await create_key(client, ["workflows:execute"])

    response = await client.post(
        "/api/v1/workflows/wf_a/run", json={"input": {"n": 1}}, headers=as_key(key["key"])
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.json() == {
        "success": True,
        "data": {
            "runId": data["runId"],
            "status": data["status"],
            "workflowId": "wf_a",
            "workflowVersion": 1,
        },
    }
    assert data["runId"].startswith("run_")
    assert data["status"] in ("pending", "queued")


async def test_admin_key_of_a_project_has_every_scope(client: httpx.AsyncClient) -> None:
    key = await create_key(client, ["admin"])
    headers = as_key(key["key"])

    created = await client.post("/api/v1/workflows", json=simple_workflow("wf_b"), headers=headers)
    started = await client.post("/api/v1/workflows/wf_b/run", headers=headers)
    listed = await client.get("/api/v1/runs", headers=headers)

    assert (created.status_code, started.status_code, listed.status_code) == (201, 201, 200)


# --- projects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenants:
    """Objects of project A (the default project) and an admin key of project B."""

    workflow_id: str
    workflow_name: str
    run_id: str
    key_id: str
    key_secret: str
    connection_id: str
    trigger_id: str
    delivery_id: str
    file_id: str
    project_b: dict[str, Any]
    b_key: str

    @property
    def b(self) -> dict[str, str]:
        return as_key(self.b_key)

    def ids(self) -> dict[str, str]:
        """Path-parameter values naming project A's objects."""
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "key_id": self.key_id,
            "project_id": "prj_default",
            "connection_id": self.connection_id,
            "trigger_id": self.trigger_id,
            "delivery_id": self.delivery_id,
            "file_id": self.file_id,
        }


@pytest.fixture
async def tenants(client: httpx.AsyncClient) -> Tenants:
    workflow = await create_workflow(client, simple_workflow("wf_a"))
    run = await client.post("/api/v1/workflows/wf_a/run", json={"input": {"n": 1}})
    key = await create_key(client, ["runs:read"])
    connection = await client.post(
        "/api/v1/connections",
        json={"name": "a-http", "type": "http", "config": {"baseUrl": "https://a.test"}},
    )
    trigger = await client.post("/api/v1/workflows/wf_a/triggers", json={"type": "webhook"})
    assert trigger.status_code == 201, trigger.text
    trigger_data = trigger.json()["data"]
    hook = await client.post(urlsplit(trigger_data["url"]).path, json={"n": 1})
    deliveries = await client.get(f"/api/v1/triggers/{trigger_data['id']}/deliveries")
    upload = await client.post(
        urlsplit(trigger_data["url"]).path,
        files={"f": ("a.txt", b"a")},
        headers={"x-api-wait": "true"},
    )
    assert upload.status_code == 200, upload.text
    project = await client.post("/api/v1/projects", json={"name": "B"})
    assert (run.status_code, connection.status_code, project.status_code) == (201, 201, 201)
    assert hook.status_code == 202, hook.text
    b_key = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    return Tenants(
        workflow_id=workflow["id"],
        workflow_name=workflow["name"],
        run_id=run.json()["data"]["runId"],
        key_id=key["id"],
        key_secret=key["key"],
        connection_id=connection.json()["data"]["id"],
        trigger_id=trigger_data["id"],
        delivery_id=deliveries.json()["data"][0]["id"],
        file_id=upload.json()["data"]["input"]["body"]["f"]["url"].rsplit("/", 1)[1],
        project_b=project.json()["data"],
        b_key=b_key["key"],
    )


async def test_create_project_returns_201(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/projects", json={"name": "Marketing"})

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.json() == {
        "success": True,
        "data": {
            **data,
            "id": data["id"],
            "orgId": data["orgId"],
            "name": "Marketing",
            "createdAt": data["createdAt"],
        },
    }
    assert re.match(r"^prj_\w+$", data["id"]), data
    assert isinstance(data["orgId"], str)
    assert data["orgId"]
    assert WIRE_TIME.match(data["createdAt"]), data


async def test_list_projects_default_admin_sees_the_default_project(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/projects")

    assert response.status_code == 200, response.text
    default = next(p for p in response.json()["data"] if p["id"] == "prj_default")
    assert default["orgId"] == "org_default"


async def test_create_key_for_another_project_belongs_to_it(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    project_id = tenants.project_b["id"]

    key = await create_key(client, ["runs:read"], projectId=project_id)
    listed = await client.get("/api/v1/keys", headers=tenants.b)

    assert key["projectId"] == project_id
    assert key["id"] in [k["id"] for k in listed.json()["data"]]


async def test_list_projects_project_b_key_sees_only_b(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await client.get("/api/v1/projects", headers=tenants.b)

    assert response.status_code == 200, response.text
    assert response.json()["data"] == [tenants.project_b]


@pytest.mark.parametrize("path", ["/api/v1/workflows", "/api/v1/runs", "/api/v1/keys"])
async def test_list_project_b_key_sees_nothing_of_a(
    client: httpx.AsyncClient, tenants: Tenants, path: str
) -> None:
    response = await client.get(path, headers=tenants.b)

    assert response.status_code == 200, response.text
    text = response.text
    for foreign in (tenants.workflow_id, tenants.run_id, tenants.key_id):
        assert foreign not in text
    if path != "/api/v1/keys":  # B's own admin key is listed there
        assert response.json()["data"] == []


async def test_list_connections_project_b_key_sees_nothing_of_a(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await client.get("/api/v1/connections", headers=tenants.b)

    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize(
    ("method", "template", "message"),
    [
        ("GET", "/api/v1/workflows/{workflow_id}", "Workflow not found"),
        ("GET", "/api/v1/workflows/{workflow_name}", "Workflow not found"),
        ("GET", "/api/v1/workflows/{workflow_id}/versions", "Workflow not found"),
        ("POST", "/api/v1/workflows/{workflow_id}/activate", "Workflow not found"),
        ("POST", "/api/v1/workflows/{workflow_id}/pause", "Workflow not found"),
        ("POST", "/api/v1/workflows/{workflow_id}/archive", "Workflow not found"),
        ("POST", "/api/v1/workflows/{workflow_id}/run", "Workflow not found"),
        ("POST", "/api/v1/workflows/{workflow_name}/run", "Workflow not found"),
        ("GET", "/api/v1/runs/{run_id}", "Run not found"),
        ("POST", "/api/v1/runs/{run_id}/cancel", "Run not found"),
        ("POST", "/api/v1/runs/{run_id}/replay", "Run not found"),
        ("DELETE", "/api/v1/keys/{key_id}", TEXT),
        ("GET", "/api/v1/connections/{connection_id}", TEXT),
        ("GET", "/api/v1/projects/{project_id}", TEXT),
    ],
)
async def test_project_b_key_on_a_object_returns_404(
    client: httpx.AsyncClient, tenants: Tenants, method: str, template: str, message: object
) -> None:
    path = template.format(**tenants.ids(), workflow_name=tenants.workflow_name)

    response = await client.request(method, path, json={}, headers=tenants.b)

    assert response.status_code == 404, response.text
    assert error_of(response) == {"code": "NOT_FOUND", "message": message}


async def test_project_b_key_runs_with_a_connection_returns_404(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    created = await client.post(
        "/api/v1/workflows", json=simple_workflow("wf_in_b"), headers=tenants.b
    )
    assert created.status_code == 201, created.text

    response = await client.post(
        "/api/v1/workflows/wf_in_b/run",
        json={"input": {"n": 1}, "connectionId": tenants.connection_id},
        headers=tenants.b,
    )

    assert response.status_code == 404, response.text
    assert error_of(response) == {"code": "NOT_FOUND", "message": "Connection not found"}


async def test_project_b_admin_creates_key_in_a_returns_404(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await client.post(
        "/api/v1/keys",
        json={"name": "sneaky", "scopes": ["admin"], "projectId": "prj_default"},
        headers=tenants.b,
    )

    assert (response.status_code, error_of(response)) == (404, NOT_FOUND)


#: Bodies valid enough that only the foreign id can make the request fail.
WALK_BODIES: dict[str, Any] = {
    "/api/v1/workflows/{workflow_id}": simple_workflow("wf_a"),
    "/api/v1/workflows/{workflow_id}/run/batch": {"runs": [{"input": {"n": 1}}]},
    "/api/v1/projects/{project_id}": {"name": "taken over"},
    "/api/v1/connections/{connection_id}": {"name": "taken over"},
    "/api/v1/workflows/{workflow_id}/triggers": {"type": "api"},
    "/api/v1/triggers/{trigger_id}": {"enabled": False},
}
#: The routes with an id that DESIGN §3 names and that exist so far (the run stream comes
#: later): the walk must reach at least these.
WALKED_AT_LEAST = {
    *(
        (method, "/api/v1/workflows/{workflow_id}" + tail)
        for method, tail in [
            ("GET", ""),
            ("PUT", ""),
            ("DELETE", ""),
            ("POST", "/activate"),
            ("POST", "/pause"),
            ("POST", "/archive"),
            ("GET", "/versions"),
            ("POST", "/run"),
            ("POST", "/run/batch"),
            ("POST", "/triggers"),
            ("GET", "/triggers"),
        ]
    ),
    ("GET", "/api/v1/runs/{run_id}"),
    ("POST", "/api/v1/runs/{run_id}/cancel"),
    ("POST", "/api/v1/runs/{run_id}/replay"),
    ("POST", "/api/v1/runs/{run_id}/rerun"),
    ("DELETE", "/api/v1/keys/{key_id}"),
    ("GET", "/api/v1/projects/{project_id}"),
    ("PATCH", "/api/v1/projects/{project_id}"),
    ("GET", "/api/v1/connections/{connection_id}"),
    ("PATCH", "/api/v1/connections/{connection_id}"),
    ("DELETE", "/api/v1/connections/{connection_id}"),
    ("DELETE", "/api/v1/triggers/{trigger_id}"),
    ("PATCH", "/api/v1/triggers/{trigger_id}"),
    ("GET", "/api/v1/triggers/{trigger_id}/deliveries"),
    ("POST", "/api/v1/triggers/{trigger_id}/deliveries/{delivery_id}/replay"),
    ("GET", "/api/v1/files/{file_id}"),
}
#: The exact message for a foreign object of each kind, where DESIGN §3 pins one.
WALK_MESSAGES: dict[str, object] = {
    "workflow_id": "Workflow not found",
    "run_id": "Run not found",
    "trigger_id": "Trigger not found",
    "file_id": "File not found",
}


def _app_routes(routes: list[BaseRoute]) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every endpoint. FastAPI 0.16x keeps each included router as one
    route whose endpoints are its ``effective_route_contexts``; older ones list them flat."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                yield context.path, set(context.methods or ())
        elif isinstance(route, Route):
            yield route.path, set(route.methods or ())


def _routes_with_ids(server: ThreadedServer) -> list[tuple[str, str, list[str]]]:
    """(method, path template, path parameters) for every route of the app with a parameter."""
    app = server.server.config.app
    assert isinstance(app, Starlette)
    found = []
    for path, methods in _app_routes(app.routes):
        if not path.startswith("/api/"):
            continue  # /hooks/{token} takes no key: the token is the credential
        params = PATH_PARAM.findall(path)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            if params:
                found.append((method, path, [name for name, _ in params]))
    return found


async def _walk(
    client: httpx.AsyncClient, server: ThreadedServer, tenants: Tenants
) -> list[tuple[str, str, int, dict[str, Any]]]:
    """B's admin key calls every route that takes an id with project A's ids."""
    ids = tenants.ids()
    results = []
    for method, template, params in _routes_with_ids(server):
        unknown = sorted(set(params) - set(ids))
        assert not unknown, f"{method} {template}: add a project-A object for {unknown} to the walk"
        path = template.format(**ids)
        body = WALK_BODIES.get(template, {}) if method in ("POST", "PUT", "PATCH") else None
        response = await client.request(method, path, json=body, headers=tenants.b)
        results.append((method, template, response.status_code, error_of(response)))
    return results


async def test_every_route_with_an_id_project_b_key_on_a_object_returns_404(
    client: httpx.AsyncClient, server: ThreadedServer, tenants: Tenants
) -> None:
    results = await _walk(client, server, tenants)

    expected = [
        (method, template, 404, {"code": "NOT_FOUND", "message": _walk_message(template)})
        for method, template, _, _ in results
    ]
    assert results == expected
    walked = {name for _, template, _, _ in results for name, _ in PATH_PARAM.findall(template)}
    assert walked == set(tenants.ids())
    assert {(method, template) for method, template, _, _ in results} >= WALKED_AT_LEAST


def _walk_message(template: str) -> object:
    names = [name for name, _ in PATH_PARAM.findall(template)]
    return next((WALK_MESSAGES[name] for name in names if name in WALK_MESSAGES), TEXT)


async def test_every_route_with_an_id_project_b_key_changes_nothing_of_a(
    client: httpx.AsyncClient, server: ThreadedServer, tenants: Tenants
) -> None:
    before = {
        "workflow": (await client.get(f"/api/v1/workflows/{tenants.workflow_id}")).json(),
        "connection": (await client.get(f"/api/v1/connections/{tenants.connection_id}")).json(),
        "project": (await client.get("/api/v1/projects/prj_default")).json(),
        "runs": len((await client.get("/api/v1/runs")).json()["data"]),
        "triggers": (await client.get("/api/v1/workflows/wf_a/triggers")).json(),
    }

    await _walk(client, server, tenants)
    a_key_still_works = await client.get("/api/v1/runs", headers=as_key(tenants.key_secret))

    after = {
        "workflow": (await client.get(f"/api/v1/workflows/{tenants.workflow_id}")).json(),
        "connection": (await client.get(f"/api/v1/connections/{tenants.connection_id}")).json(),
        "project": (await client.get("/api/v1/projects/prj_default")).json(),
        "runs": len((await client.get("/api/v1/runs")).json()["data"]),
        "triggers": (await client.get("/api/v1/workflows/wf_a/triggers")).json(),
    }
    assert after == before
    assert a_key_still_works.status_code == 200, a_key_still_works.text


async def test_create_workflow_same_name_in_another_project_returns_201(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    definition = {**simple_workflow("wf_other"), "name": tenants.workflow_name}
    del definition["id"]

    response = await client.post("/api/v1/workflows", json=definition, headers=tenants.b)

    assert response.status_code == 201, response.text
    assert response.json()["data"]["name"] == tenants.workflow_name
    assert response.json()["data"]["id"] != tenants.workflow_id


async def test_get_workflow_by_name_each_project_sees_its_own(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    definition = {**simple_workflow("wf_other"), "name": tenants.workflow_name}
    del definition["id"]
    b_workflow = (await client.post("/api/v1/workflows", json=definition, headers=tenants.b)).json()

    in_a = await client.get(f"/api/v1/workflows/{tenants.workflow_name}")
    in_b = await client.get(f"/api/v1/workflows/{tenants.workflow_name}", headers=tenants.b)

    assert in_a.json()["data"]["id"] == tenants.workflow_id
    assert in_b.json()["data"]["id"] == b_workflow["data"]["id"]


async def test_create_workflow_same_chosen_id_in_another_project_returns_201(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    """Client-chosen ids (``wf_daily_report``) are per project: a clash must not reveal A's."""
    response = await client.post(
        "/api/v1/workflows", json=simple_workflow(tenants.workflow_id), headers=tenants.b
    )

    assert response.status_code == 201, response.text
    assert response.json()["data"]["id"] == tenants.workflow_id
    assert response.json()["data"]["projectId"] == tenants.project_b["id"]
