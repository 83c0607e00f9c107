"""Webhooks are rate limited per trigger (DESIGN §3 execute category): a URL that anyone may
call cannot start more runs a minute than a key could."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from flowgate.settings import Settings
from tests.integration.conftest import create_workflow, simple_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(public_url="https://flows.example.com", execute_rate_limit=2)


async def _webhook_path(client: httpx.AsyncClient, workflow_id: str) -> str:
    await create_workflow(client, simple_workflow(workflow_id))
    created = await client.post(
        f"/api/v1/workflows/{workflow_id}/triggers", json={"type": "webhook"}
    )
    assert created.status_code == 201, created.text
    url: str = created.json()["data"]["url"]
    return url.removeprefix("https://flows.example.com")


async def test_webhook_over_its_trigger_limit_is_429_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    path = await _webhook_path(client, "wf_hooked")
    other = await _webhook_path(client, "wf_other")

    answers = [(await client.post(path, json={"n": i})).status_code for i in range(3)]
    refused = await client.post(path, json={"n": 3})
    elsewhere = await client.post(other, json={"n": 1})
    runs = await client.get("/api/v1/runs", params={"workflowId": "wf_hooked"})

    assert answers == [202, 202, 429]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["retry-after"]
    assert elsewhere.status_code == 202
    assert len(runs.json()["data"]) == 2
