"""Connections, actions and email, with the seed's complete example run end to end against a
Stripe stand-in (HTTP on loopback) and a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiosmtpd.controller import Controller

from flowgate.documents import read_document
from flowgate.settings import Settings
from tests import targets
from tests.conftest import ThreadedServer
from tests.integration.conftest import create_workflow
from tests.pg import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "process_customer_order.json"
ORDER = {
    "customerId": "cus_123",
    "customerEmail": "ada@example.com",
    "items": [
        {"productId": "p1", "quantity": 2, "price": 10},
        {"productId": "p2", "quantity": 1, "price": 5.5},
    ],
}


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def stripe() -> Iterator[str]:
    targets.STRIPE_REQUESTS.clear()
    with ThreadedServer(targets.app) as running:
        yield running.url


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings], smtp: tuple[int, _Inbox]) -> Settings:
    return make_settings(
        http_allow_private=True,
        http_max_response_bytes=10_000,
        smtp_host="127.0.0.1",
        smtp_port=smtp[0],
        smtp_from="orders@flowgate.test",
        secret_key="test-secret",
    )


async def test_seed_complete_example_runs_to_completed(
    client: httpx.AsyncClient, stripe: str, smtp: tuple[int, _Inbox]
) -> None:
    inbox = smtp[1]
    inbox.messages.clear()
    connection = await client.post(
        "/api/v1/connections",
        json={
            "id": "conn_production_stripe",
            "name": "Stripe",
            "type": "stripe",
            "config": {"apiBase": stripe},
            "credentials": {"secretKey": "sk_test_123"},
        },
    )
    assert connection.status_code == 201
    definition = read_document(EXAMPLE)
    assert isinstance(definition, dict)
    await create_workflow(client, {**definition, "status": "active"})

    response = await client.post(
        "/api/v1/workflows/Process Customer Order/run",
        json={"input": ORDER, "connectionId": "conn_production_stripe"},
        headers={"x-api-wait": "true"},
    )

    data = response.json()["data"]
    assert data["status"] == "completed", data["error"]
    invoice_item = next(form for kind, _, form in targets.STRIPE_REQUESTS if kind == "invoiceitems")
    assert invoice_item["amount"] == "2754"
    assert invoice_item["customer"] == "cus_123"
    assert all(auth == "Bearer sk_test_123" for _, auth, _ in targets.STRIPE_REQUESTS)
    assert data["steps"][1]["output"]["number"] == "INV-0001"
    [mail] = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == "Order Confirmed - Invoice #INV-0001"
    html = next(part for part in mail.walk() if part.get_content_type() == "text/html")
    assert "Total: $27.54" in html.get_payload(decode=True).decode()


async def test_connection_credentials_are_never_returned(client: httpx.AsyncClient) -> None:
    body = {
        "name": "Slack",
        "type": "slack",
        "credentials": {"webhookUrl": "https://hooks.slack.test/very-secret"},
    }

    created = await client.post("/api/v1/connections", json=body)
    listed = await client.get("/api/v1/connections")
    one = await client.get(f"/api/v1/connections/{created.json()['data']['id']}")

    assert created.status_code == 201
    for response in (created, listed, one):
        assert "very-secret" not in response.text
        assert "credentials" not in response.text
    assert created.json()["data"]["hasCredentials"] is True


async def test_connection_missing_required_credential_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/connections", json={"name": "s", "type": "stripe", "credentials": {}}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"path": ["credentials", "secretKey"], "message": "Required"}
    ]


async def test_unknown_connection_id_on_run_is_404(client: httpx.AsyncClient) -> None:
    definition = read_document(EXAMPLE)
    assert isinstance(definition, dict)
    await create_workflow(client, {**definition, "status": "active"})

    response = await client.post(
        "/api/v1/workflows/wf_process_customer_order/run",
        json={"input": ORDER, "connectionId": "conn_nope"},
    )

    assert response.status_code == 404
    assert response.json()["error"] == {"code": "NOT_FOUND", "message": "Connection not found"}


async def test_unknown_action_is_400_at_write(client: httpx.AsyncClient) -> None:
    definition = {
        "id": "wf_act",
        "name": "act",
        "steps": [{"id": "a", "type": "action", "action": "stripe.teleport", "config": {}}],
    }

    response = await client.post("/api/v1/workflows", json=definition)

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == ["steps", 0, "action"]


async def test_connection_patch_and_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/connections",
        json={"id": "conn_h", "name": "h", "type": "http", "config": {"baseUrl": "https://a.test"}},
    )
    patched = await client.patch("/api/v1/connections/conn_h", json={"name": "renamed"})
    deleted = await client.delete("/api/v1/connections/conn_h")
    gone = await client.get("/api/v1/connections/conn_h")

    assert created.status_code == 201
    assert patched.json()["data"]["name"] == "renamed"
    assert patched.json()["data"]["config"] == {"baseUrl": "https://a.test"}
    assert deleted.status_code == 200
    assert gone.status_code == 404


async def _action_run(
    client: httpx.AsyncClient, workflow_id: str, action: str, config: dict[str, Any], **step: Any
) -> dict[str, Any]:
    steps = [{"id": "act", "type": "action", "action": action, "config": config, **step}]
    definition = {"id": workflow_id, "name": workflow_id, "status": "active", "steps": steps}
    await create_workflow(client, definition)
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/run", json={"input": {}}, headers={"x-api-wait": "true"}
    )
    data: dict[str, Any] = response.json()["data"]
    return data


async def _http_connection(client: httpx.AsyncClient, base_url: str) -> str:
    created = await client.post(
        "/api/v1/connections",
        json={
            "name": "api",
            "type": "http",
            "config": {"baseUrl": base_url},
            "credentials": {"headers": {"Authorization": "Bearer conn-secret", "X-Api-Key": "k1"}},
        },
    )
    assert created.status_code == 201, created.text
    connection_id: str = created.json()["data"]["id"]
    return connection_id


@pytest.mark.parametrize("form", ["absolute", "scheme-relative"])
async def test_http_request_url_to_other_origin_fails_and_sends_nothing(
    client: httpx.AsyncClient, target: str, other: str, form: str
) -> None:
    connection_id = await _http_connection(client, target)
    url = other + "/record" if form == "absolute" else other.removeprefix("http:") + "/record"

    data = await _action_run(
        client, "wf_leave", "http.request", {"url": url}, connectionId=connection_id
    )

    assert data["status"] == "failed"
    assert data["error"]["code"] == "STEP_FAILED"
    assert data["error"]["message"] == "url leaves the connection's origin"
    assert targets.SEEN == []


async def test_http_request_relative_url_sends_credentials_and_idempotency_key(
    client: httpx.AsyncClient, target: str
) -> None:
    connection_id = await _http_connection(client, target)

    data = await _action_run(
        client, "wf_rel", "http.request", {"url": "/record"}, connectionId=connection_id
    )

    assert data["status"] == "completed", data.get("error")
    [arrived] = targets.SEEN
    assert arrived["headers"]["authorization"] == ["Bearer conn-secret"]
    assert arrived["headers"]["x-api-key"] == ["k1"]
    assert arrived["headers"]["idempotency-key"] == [f"{data['id']}:act"]


async def test_http_request_redirect_to_other_origin_drops_connection_headers(
    client: httpx.AsyncClient, target: str, other: str
) -> None:
    connection_id = await _http_connection(client, target)
    config = {"url": f"/redirect?to={quote(other + '/record')}", "headers": {"X-Trace": "t"}}

    data = await _action_run(client, "wf_away", "http.request", config, connectionId=connection_id)

    assert data["status"] == "completed", data.get("error")
    first, second = targets.SEEN
    assert first["headers"]["x-api-key"] == ["k1"]
    assert second["host"] == other.removeprefix("http://")
    assert "authorization" not in second["headers"]
    assert "x-api-key" not in second["headers"]
    assert second["headers"]["x-trace"] == ["t"]


async def _slack_connection(client: httpx.AsyncClient, webhook_url: str) -> str:
    created = await client.post(
        "/api/v1/connections",
        json={"name": "slack", "type": "slack", "credentials": {"webhookUrl": webhook_url}},
    )
    assert created.status_code == 201, created.text
    connection_id: str = created.json()["data"]["id"]
    return connection_id


async def test_slack_post_message_response_over_cap_fails_without_showing_url(
    client: httpx.AsyncClient, target: str
) -> None:
    connection_id = await _slack_connection(client, f"{target}/big?bytes=20000")

    data = await _action_run(
        client, "wf_slack_big", "slack.postMessage", {"text": "hi"}, connectionId=connection_id
    )

    assert data["status"] == "failed"
    assert data["error"]["message"] == "Response from the Slack webhook is larger than 10000 bytes"


async def test_slack_post_message_sends_idempotency_key(
    client: httpx.AsyncClient, target: str
) -> None:
    connection_id = await _slack_connection(client, f"{target}/record")

    data = await _action_run(
        client, "wf_slack_key", "slack.postMessage", {"text": "hi"}, connectionId=connection_id
    )

    assert data["status"] == "completed", data.get("error")
    [arrived] = targets.SEEN
    assert arrived["body"] == '{"text":"hi"}'
    assert arrived["headers"]["idempotency-key"] == [f"{data['id']}:act"]
