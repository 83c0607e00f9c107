"""A key's limits answer 429 with the documented message and headers, in one API process and
across two on one PostgreSQL database (each with its own services: they share only the database).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
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


def _process_settings(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=url,
        admin_key=ADMIN_KEY,
        workers=0,
        read_rate_limit=5,
        data_dir=tmp_path,
        log_level="warning",
        log_format="json",
    )


async def _key_on_two_processes(
    postgres_url: str, tmp_path: Path, stack: ExitStack, limit: int
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Two API processes on one database, and a client for each holding a key limited to
    ``limit`` execute requests a minute."""
    servers = [
        stack.enter_context(ThreadedServer(create_app(_process_settings(postgres_url, tmp_path))))
        for _ in range(2)
    ]
    async with httpx.AsyncClient(
        base_url=servers[0].url, headers={"x-api-key": ADMIN_KEY}
    ) as admin:
        await create_workflow(admin, simple_workflow("wf_a"))
        created = await admin.post(
            "/api/v1/keys",
            json={
                "name": "shared",
                "scopes": ["workflows:execute", "workflows:read"],
                "rateLimitPerMinute": limit,
            },
        )
    key = created.json()["data"]["key"]
    return (
        httpx.AsyncClient(base_url=servers[0].url, headers={"x-api-key": key}, timeout=30),
        httpx.AsyncClient(base_url=servers[1].url, headers={"x-api-key": key}, timeout=30),
    )


async def test_execute_limit_holds_across_two_api_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        one, two = await _key_on_two_processes(postgres_url, tmp_path, stack, limit=4)
        async with one, two:
            spread = [
                (await client.post("/api/v1/workflows/wf_a/run")).status_code
                for client in (one, two, two, one)
            ]
            over = [await client.post("/api/v1/workflows/wf_a/run") for client in (one, two)]

    assert spread == [201] * 4
    for response in over:
        assert response.status_code == 429
        assert response.json() == {
            "success": False,
            "error": {
                "code": "RATE_LIMITED",
                "message": "Rate limit exceeded. Limit: 4 requests per minute.",
            },
        }
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["ratelimit-limit"] == "4"
        assert response.headers["ratelimit-remaining"] == "0"


async def test_read_limit_across_processes_is_apart_from_execute(
    postgres_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        one, two = await _key_on_two_processes(postgres_url, tmp_path, stack, limit=2)
        async with one, two:
            executes = [
                (await client.post("/api/v1/workflows/wf_a/run")).status_code
                for client in (one, two, one)
            ]
            reads = [
                (await client.get("/api/v1/workflows")).status_code
                for client in (two, one, two, one, two, one, two)
            ]

    assert executes == [201, 201, 429]
    assert reads == [200] * 5 + [429, 429]
