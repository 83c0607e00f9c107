"""The ``http`` step against a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from flowgate.settings import Settings
from tests import targets
from tests.conftest import ThreadedServer
from tests.integration.conftest import create_workflow


@pytest.fixture
def target() -> Iterator[str]:
    with ThreadedServer(targets.app) as running:
        yield running.url


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http_allow_private=True, http_max_response_bytes=10_000)


def _workflow(workflow_id: str, config: dict, **step: object) -> dict:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [{"id": "call", "type": "http", "config": config, **step}],
    }


async def _run(client: httpx.AsyncClient, workflow_id: str, run_input: dict | None = None) -> dict:
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/run",
        json={"input": run_input or {}},
        headers={"x-api-wait": "true"},
    )
    return response.json()["data"]


async def test_http_post_json_templated_returns_status_headers_body(
    client: httpx.AsyncClient, target: str
) -> None:
    config = {
        "method": "POST",
        "url": target + "/echo",
        "query": {"page": "{{input.page}}"},
        "headers": {"X-Order": "{{input.order}}"},
        "json": {"total": "{{input.total}}"},
    }
    await create_workflow(client, _workflow("wf_post", config))

    data = await _run(client, "wf_post", {"page": 2, "order": "o-1", "total": 27.54})

    output = data["output"]
    assert data["status"] == "completed"
    assert output["status"] == 200
    assert output["headers"]["content-type"] == "application/json"
    assert output["body"] == {
        "method": "POST",
        "query": {"page": "2"},
        "headers": {"x-order": "o-1"},
        "body": '{"total":27.54}',
    }


async def test_http_non_2xx_fails_unless_ok_status(client: httpx.AsyncClient, target: str) -> None:
    await create_workflow(client, _workflow("wf_404", {"url": target + "/status/404"}))
    await create_workflow(
        client, _workflow("wf_404_ok", {"url": target + "/status/404", "okStatus": [404]})
    )

    failed = await _run(client, "wf_404")
    accepted = await _run(client, "wf_404_ok")

    assert failed["status"] == "failed"
    assert failed["error"]["message"] == f"HTTP 404 from {target}/status/404"
    assert accepted["status"] == "completed"
    assert accepted["output"]["body"] == "status 404"


async def test_http_retry_applies_to_5xx(client: httpx.AsyncClient, target: str) -> None:
    key = f"k-{id(client)}"
    retry = {"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 20}
    await create_workflow(
        client, _workflow("wf_flaky", {"url": f"{target}/flaky/{key}"}, retry=retry)
    )

    data = await _run(client, "wf_flaky")

    assert data["status"] == "completed"
    assert data["steps"][0]["attempt"] == 3
    assert data["output"]["body"] == {"calls": 3}


async def test_http_follows_redirects(client: httpx.AsyncClient, target: str) -> None:
    config = {"url": f"{target}/redirect?to=/echo"}
    await create_workflow(client, _workflow("wf_redirect", config))

    data = await _run(client, "wf_redirect")

    assert data["output"]["body"]["method"] == "GET"


async def test_http_response_over_cap_fails(client: httpx.AsyncClient, target: str) -> None:
    await create_workflow(client, _workflow("wf_big", {"url": f"{target}/big?bytes=20000"}))

    data = await _run(client, "wf_big")

    assert data["status"] == "failed"
    assert "larger than 10000 bytes" in data["error"]["message"]


async def test_http_step_without_url_is_400_at_write(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/workflows", json=_workflow("wf_nourl", {"method": "GET"}))

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == ["steps", 0, "config", "url"]
