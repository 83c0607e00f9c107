"""The ``http`` step against a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from flowgate.settings import Settings
from tests import targets
from tests.integration.conftest import create_workflow


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        http_allow_private=True, http_max_response_bytes=10_000, http_timeout_secs=3
    )


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


def _seen(path: str) -> list[dict[str, Any]]:
    return [request for request in targets.SEEN if request["path"] == path]


async def test_http_redirect_302_to_other_origin_drops_credentials_keeps_other_headers(
    client: httpx.AsyncClient, target: str, other: str
) -> None:
    headers = {
        "Authorization": "Bearer step-secret",
        "Proxy-Authorization": "Basic cHJveHk=",
        "Cookie": "session=s3cret",
        "X-Trace": "t-1",
    }
    config = {"url": f"{target}/redirect?to={quote(other + '/record')}", "headers": headers}
    await create_workflow(client, _workflow("wf_redirect_away", config))

    data = await _run(client, "wf_redirect_away")

    assert data["status"] == "completed", data.get("error")
    [arrived] = _seen("/record")
    assert arrived["host"] == other.removeprefix("http://")
    assert arrived["method"] == "GET"
    sent = arrived["headers"]
    assert "authorization" not in sent
    assert "proxy-authorization" not in sent
    assert "cookie" not in sent
    assert sent["x-trace"] == ["t-1"]


async def test_http_redirect_307_same_origin_keeps_then_other_origin_drops_auth_and_body(
    client: httpx.AsyncClient, target: str, other: str
) -> None:
    away = f"{target}/redirect?code=307&to={quote(other + '/record')}"
    config = {
        "method": "POST",
        "url": f"{target}/redirect?code=307&to={quote(away, safe='')}",
        "headers": {"Authorization": "Bearer step-secret"},
        "json": {"card": "4242"},
    }
    await create_workflow(client, _workflow("wf_redirect_307", config))

    data = await _run(client, "wf_redirect_307")

    assert data["status"] == "completed", data.get("error")
    first, second, third = targets.SEEN
    for hop in (first, second):
        assert hop["host"] == target.removeprefix("http://")
        assert hop["headers"]["authorization"] == ["Bearer step-secret"]
        assert hop["body"] == '{"card":"4242"}'
    assert third["host"] == other.removeprefix("http://")
    assert third["method"] == "POST"
    assert "authorization" not in third["headers"]
    assert third["body"] == ""


async def test_http_idempotency_key_same_on_every_attempt_and_step_header_wins(
    client: httpx.AsyncClient, target: str
) -> None:
    retry = {"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 20}
    definition = {
        "id": "wf_idem",
        "name": "wf_idem",
        "status": "active",
        "steps": [
            {
                "id": "call",
                "type": "http",
                "retry": retry,
                "config": {"url": f"{target}/record?key=idem-{id(client)}&fails=2"},
            },
            {
                "id": "own",
                "type": "http",
                "config": {
                    "url": f"{target}/record?key=own-{id(client)}",
                    "headers": {"idempotency-key": "mine-1"},
                },
            },
        ],
    }
    await create_workflow(client, definition)

    data = await _run(client, "wf_idem")

    assert data["status"] == "completed", data.get("error")
    keys = [(r["key"], r["headers"]["idempotency-key"]) for r in _seen("/record")]
    expected = [f"{data['id']}:call"]
    assert keys == [(f"idem-{id(client)}", expected)] * 3 + [(f"own-{id(client)}", ["mine-1"])]


async def test_http_response_trickling_past_timeout_fails_the_step(
    client: httpx.AsyncClient, target: str
) -> None:
    # Each byte comes within the 3 s read timeout; the whole would take 30 s.
    config = {"url": f"{target}/trickle?bytes=150&every=0.2"}
    await create_workflow(client, _workflow("wf_trickle", config))

    data = await _run(client, "wf_trickle")

    assert data["status"] == "failed"
    assert data["error"]["code"] == "STEP_FAILED"
    assert data["error"]["message"] == (f"No complete response from {config['url']} within 3 s")
