"""What one request may cost; ids that do not fit: 400 INVALID_REQUEST, never 500 (DESIGN §7)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from flowgate.engine.definition import TRIGGER_TYPES
from tests.integration.conftest import create_workflow, simple_workflow

TOO_LARGE = "Document too large or too deep"
YAML = {"content-type": "application/yaml"}


def _invalid(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "INVALID_REQUEST"
    return dict(body["error"])


def _alias_bomb() -> bytes:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return ("name: bomb\nsteps: []\n" + "\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    "body",
    [_alias_bomb(), b"name: deep\nsteps: " + b"[" * 20_000 + b"]" * 20_000 + b"\n"],
    ids=["alias-bomb", "20000-deep"],
)
async def test_create_workflow_yaml_over_limits_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post("/api/v1/workflows", content=body, headers=YAML)

    assert _invalid(response) == {"code": "INVALID_REQUEST", "message": TOO_LARGE}


async def test_start_run_json_513_deep_is_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    body = b'{"input": {"n": ' + b"[" * 511 + b"]" * 511 + b"}}"

    response = await client.post("/api/v1/workflows/wf_a/run", content=body)

    assert _invalid(response) == {"code": "INVALID_REQUEST", "message": TOO_LARGE}


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("resource", ["runs", "workflows"])
@pytest.mark.parametrize("raw", [b"9" * 70 + b":x", b"1:run_\x00"], ids=["overflow", "nul-id"])
async def test_list_cursor_that_does_not_fit_is_400(
    client: httpx.AsyncClient, resource: str, raw: bytes
) -> None:
    response = await client.get(f"/api/v1/{resource}", params={"cursor": _cursor(raw)})

    assert _invalid(response) == {"code": "INVALID_REQUEST", "message": "Invalid cursor"}


@pytest.mark.parametrize("name", ["workflowId", "source"])
async def test_list_runs_filter_with_nul_is_400(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get("/api/v1/runs", params={name: "a\x00b"})

    assert _invalid(response) == {
        "code": "INVALID_REQUEST",
        "message": f"{name} must not contain NUL characters",
        "details": [{"path": [name], "message": "must not contain NUL characters"}],
    }


async def test_create_workflow_id_with_trailing_newline_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows", json=simple_workflow("wf_x\n"))

    assert _invalid(response)["details"] == [
        {"path": ["id"], "message": "must match ^wf_[A-Za-z0-9_-]{1,64}$"}
    ]


async def test_create_workflow_step_id_with_trailing_newline_is_400(
    client: httpx.AsyncClient,
) -> None:
    definition = simple_workflow("wf_x")
    definition["steps"][0]["id"] = "only\n"

    response = await client.post("/api/v1/workflows", json=definition)

    assert _invalid(response)["details"] == [
        {"path": ["steps", 0, "id"], "message": "step ids are 1-200 characters of [A-Za-z0-9_-]"}
    ]


@pytest.mark.parametrize("field", ["id", "type"])
async def test_create_connection_with_trailing_newline_is_400(
    client: httpx.AsyncClient, field: str
) -> None:
    body = {"id": "conn_h", "name": "h", "type": "http", "config": {"baseUrl": "https://a.test"}}
    body[field] = f"{body[field]}\n"

    response = await client.post("/api/v1/connections", json=body)

    assert [d["path"] for d in _invalid(response)["details"]] == [[field]]


@pytest.mark.parametrize(
    "trigger",
    [{"type": "email"}],
    ids=["unknown"],
)
async def test_create_workflow_unsupported_trigger_is_400(
    client: httpx.AsyncClient, trigger: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/workflows", json=simple_workflow("wf_t", trigger=trigger))

    assert _invalid(response) == {
        "code": "INVALID_REQUEST",
        "message": "Invalid workflow definition",
        "details": [
            {
                "path": ["trigger", "type"],
                "message": f"unsupported trigger type {trigger['type']!r}; supported: "
                + ", ".join(TRIGGER_TYPES),
            }
        ],
    }
