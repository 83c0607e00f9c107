"""Every bad input gets its documented code in the envelope, and never a 500 (DESIGN §3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import wait_until
from tests.integration.conftest import create_workflow, simple_workflow

SCHEMA = {
    "type": "object",
    "required": ["customerId", "amount"],
    "properties": {
        "customerId": {"type": "string", "pattern": "^cus_[a-zA-Z0-9]+$"},
        "amount": {"type": "number", "minimum": 100},
        "currency": {"type": "string", "enum": ["usd", "eur", "gbp"], "default": "usd"},
    },
}


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is False
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]
    return dict(body["error"])


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post("/api/v1/workflows/wf_a/run", content=b'{"input": ')

    assert response.status_code == 400
    assert _error(response)["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("body", [{"input": "text"}, {"input": [1]}, {"priority": "high"},
                                  {"priority": 101}, {"env": {"A": 1}}])  # fmt: skip
async def test_wrong_field_types_are_400(client: httpx.AsyncClient, body: dict) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    response = await client.post("/api/v1/workflows/wf_a/run", json=body)

    assert response.status_code == 400
    assert _error(response)["code"] == "INVALID_REQUEST"


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"input": {"pad": "'
    sent = 0
    while sent < total:
        yield b"x" * 65536
        sent += 65536
    yield b'"}}'


async def test_two_mib_body_is_413_with_or_without_length(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    big = b'{"input": {"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}}'

    sized = await client.post("/api/v1/workflows/wf_a/run", content=big)
    chunked = await client.post("/api/v1/workflows/wf_a/run", content=_chunks(2 * 1024 * 1024))

    for response in (sized, chunked):
        assert response.status_code == 413
        assert _error(response)["code"] == "PAYLOAD_TOO_LARGE"


async def test_unknown_workflow_and_draft_workflow(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_draft", status="draft"))

    unknown = await client.post("/api/v1/workflows/wf_nope/run")
    draft = await client.post("/api/v1/workflows/wf_draft/run")

    assert unknown.status_code == 404
    assert _error(unknown) == {"code": "NOT_FOUND", "message": "Workflow not found"}
    assert draft.status_code == 400
    assert _error(draft) == {
        "code": "INVALID_STATUS",
        "message": "Workflow must be active to run. Current status: draft",
    }


async def test_schema_failures_are_all_listed(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_s", inputSchema=SCHEMA))

    empty = await client.post("/api/v1/workflows/wf_s/run", json={"input": {}})
    wrong = await client.post(
        "/api/v1/workflows/wf_s/run",
        json={"input": {"customerId": "bad", "amount": 5, "currency": "yen"}},
    )

    assert empty.status_code == 400
    assert _error(empty) == {
        "code": "VALIDATION_ERROR",
        "message": "Input validation failed",
        "details": [
            {"path": ["amount"], "message": "Required"},
            {"path": ["customerId"], "message": "Required"},
        ],
    }
    assert [d["path"] for d in _error(wrong)["details"]] == [
        ["amount"],
        ["currency"],
        ["customerId"],
    ]


async def test_unknown_route_and_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    route = await client.get("/api/v1/nothing-here")
    method = await client.delete("/api/v1/runs")

    assert route.status_code == 404
    assert _error(route)["code"] == "NOT_FOUND"
    assert method.status_code == 405
    assert _error(method)["code"] == "METHOD_NOT_ALLOWED"


async def test_keys_missing_unknown_revoked_expired_and_scopes(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    reader = (await client.post("/api/v1/keys", json={"name": "r", "scopes": ["runs:read"]})).json()
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    expiring = (
        await client.post(
            "/api/v1/keys", json={"name": "e", "scopes": ["runs:read"], "expiresAt": soon}
        )
    ).json()
    await client.delete(f"/api/v1/keys/{reader['data']['id']}")
    url = "/api/v1/runs"

    missing = await client.get(url, headers={"x-api-key": ""})
    unknown = await client.get(url, headers={"x-api-key": "fgk_not_a_real_key"})
    revoked = await client.get(url, headers={"x-api-key": reader["data"]["key"]})
    bearer = await client.get(
        url, headers={"x-api-key": "", "Authorization": f"Bearer {expiring['data']['key']}"}
    )
    forbidden = await client.post(
        "/api/v1/workflows/wf_a/run", headers={"x-api-key": expiring["data"]["key"]}
    )

    for response in (missing, unknown, revoked):
        assert response.status_code == 401
        assert _error(response)["code"] == "UNAUTHORIZED"
    assert bearer.status_code == 200
    assert forbidden.status_code == 403
    assert _error(forbidden)["code"] == "FORBIDDEN"

    async def expired() -> bool:
        response = await client.get(url, headers={"x-api-key": expiring["data"]["key"]})
        return response.status_code == 401

    await wait_until(expired, timeout=10, interval=0.2)


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    sane = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    insane = await client.get("/healthz", headers={"x-request-id": "x" * 300})

    assert sane.headers["x-request-id"] == "abc-123"
    assert insane.headers["x-request-id"].startswith("req_")


async def test_nul_and_nan_bodies_are_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))

    for raw in (
        b'{"input": {"a": "\\u0000"}}',
        b'{"input": {"a": NaN}}',
        b'{"input": {"a": 1e999999}}',
    ):
        response = await client.post("/api/v1/workflows/wf_a/run", content=raw)
        assert response.status_code == 400, raw
