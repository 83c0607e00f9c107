"""A key's execute limit answers 429 with the documented message and headers."""

from __future__ import annotations

import httpx

from tests.integration.conftest import create_workflow, simple_workflow


async def test_key_over_its_limit_gets_429_with_headers(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    created = await client.post(
        "/api/v1/keys",
        json={"name": "tight", "scopes": ["workflows:execute"], "rateLimitPerMinute": 3},
    )
    key = created.json()["data"]["key"]

    responses = [
        await client.post("/api/v1/workflows/wf_a/run", headers={"x-api-key": key})
        for _ in range(8)
    ]

    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    first = limited[0]
    assert first.json() == {
        "success": False,
        "error": {
            "code": "RATE_LIMITED",
            "message": "Rate limit exceeded. Limit: 3 requests per minute.",
        },
    }
    assert 1 <= int(first.headers["retry-after"]) <= 60
    assert first.headers["ratelimit-limit"] == "3"
    assert first.headers["ratelimit-remaining"] == "0"
    assert {r.status_code for r in responses} == {201, 429}


async def test_bootstrap_admin_key_is_not_rate_limited(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_a"))
    created = await client.post(
        "/api/v1/keys", json={"name": "tight", "scopes": ["admin"], "rateLimitPerMinute": 1}
    )
    assert created.status_code == 201

    statuses = [(await client.post("/api/v1/workflows/wf_a/run")).status_code for _ in range(5)]

    assert statuses == [201] * 5
