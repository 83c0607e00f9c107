"""Native webhooks (DESIGN §4) and their inbox (§11): signatures, bodies, deliveries, replay."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from flowgate.clock import FrozenClock
from flowgate.settings import Settings
from tests.conftest import ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
# The Standard Webhooks reference test vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
SW_BODY = b'{"test": 2432232314}'


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(public_url="https://flows.example.com/", inbox_prune_secs=0.1)


@pytest.fixture
def server(server_settings: Settings, clock: FrozenClock) -> Iterator[ThreadedServer]:
    from flowgate.api.app import create_app
    from flowgate.service.core import build_services

    services = build_services(server_settings, clock=clock)
    with ThreadedServer(create_app(server_settings, services=services)) as running:
        yield running


async def _hook(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    await create_workflow(client, simple_workflow("wf_a"))
    response = await client.post("/api/v1/workflows/wf_a/triggers", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    data["path"] = data["url"].removeprefix("https://flows.example.com")
    return data


async def _runs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/runs", params={"workflowId": "wf_a"})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["data"]
    return runs


async def _deliveries(client: httpx.AsyncClient, trigger_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/triggers/{trigger_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _stripe_header(secret: str, body: bytes, stamp: int) -> str:
    signed = f"{stamp}.".encode() + body
    return f"t={stamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


async def test_create_webhook_trigger_returns_url_and_generated_secret_once(
    client: httpx.AsyncClient,
) -> None:
    created = await _hook(client, {"type": "webhook", "signatureStyle": "standard-webhooks"})
    listed = (await client.get("/api/v1/workflows/wf_a/triggers")).json()["data"]

    assert created["url"].startswith("https://flows.example.com/hooks/")
    assert len(created["url"].rsplit("/", 1)[1]) >= 32  # 192 random bits, base64url
    assert created["signingSecret"].startswith("whsec_")
    assert "signingSecret" not in listed[0]
    assert listed[0]["url"] == created["url"]


async def test_hook_unknown_token_returns_404_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post("/hooks/nope", content=b"{}")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Webhook not found"},
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-flowgate-signature": "sha256=" + "0" * 64}, {"x-flowgate-signature": "garbage"}],
    ids=["unsigned", "wrong", "garbage"],
)
async def test_hook_flowgate_style_bad_signature_is_401_and_starts_nothing(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    hook = await _hook(client, {"type": "webhook", "signingSecret": "s3cret"})

    response = await client.post(hook["path"], content=b'{"a": 1}', headers=headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert await _runs(client) == []
    [delivery] = await _deliveries(client, hook["id"])
    assert delivery["verdict"] == "rejected"
    assert delivery["runId"] is None


async def test_hook_flowgate_style_signed_body_starts_a_run_with_202(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(client, {"type": "webhook", "signingSecret": "s3cret"})
    body = b'{"a": 1}'
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    response = await client.post(
        hook["path"],
        content=body,
        headers={"x-flowgate-signature": signature, "content-type": "application/json"},
    )

    assert response.status_code == 202, response.text
    [run] = await _runs(client)
    assert response.json() == {"success": True, "data": {"runId": run["id"], "status": "pending"}}
    assert response.headers["x-run-id"] == run["id"]
    assert run["source"] == "webhook"


async def test_hook_github_style_accepts_the_documented_example(client: httpx.AsyncClient) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": "github", "signingSecret": GITHUB_SECRET}
    )

    response = await client.post(
        hook["path"],
        content=b"Hello, World!",
        headers={"x-hub-signature-256": GITHUB_SIGNATURE, "content-type": "text/plain"},
    )

    assert response.status_code == 202, response.text
    run = (await client.get(f"/api/v1/runs/{response.headers['x-run-id']}")).json()["data"]
    assert run["input"]["body"] == "Hello, World!"
    assert "x-hub-signature-256" not in run["input"]["headers"]


async def test_hook_stripe_style_accepts_then_refuses_replayed_and_stale(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": "stripe", "signingSecret": "whsec_test"}
    )
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    now = int(clock.now().timestamp())
    fresh = {"stripe-signature": _stripe_header("whsec_test", body, now)}
    stale = {"stripe-signature": _stripe_header("whsec_test", body, now - 301)}

    accepted = await client.post(hook["path"], content=body, headers=fresh)
    replayed = await client.post(hook["path"], content=body, headers=fresh)
    too_old = await client.post(hook["path"], content=body, headers=stale)

    assert accepted.status_code == 202, accepted.text
    assert replayed.status_code == 401
    assert replayed.json()["error"]["message"] == (
        "Replayed signature: this delivery was already accepted"
    )
    assert too_old.status_code == 401
    assert too_old.json()["error"]["message"] == (
        "Signature timestamp is outside the 5-minute tolerance"
    )
    assert len(await _runs(client)) == 1


async def test_hook_standard_webhooks_accepts_the_reference_vector_once(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    hook = await _hook(
        client,
        {"type": "webhook", "signatureStyle": "standard-webhooks", "signingSecret": SW_SECRET},
    )
    clock.current = datetime.fromtimestamp(1614265330 + 10, UTC)

    accepted = await client.post(hook["path"], content=SW_BODY, headers=SW_HEADERS)
    replayed = await client.post(hook["path"], content=SW_BODY, headers=SW_HEADERS)
    clock.current = datetime.fromtimestamp(1614265330 + 301, UTC)
    stale = await client.post(hook["path"], content=SW_BODY, headers=SW_HEADERS)

    assert accepted.status_code == 202, accepted.text
    assert replayed.status_code == 401
    assert stale.status_code == 401
    assert len(await _runs(client)) == 1


async def test_hook_form_body_and_query_reach_the_input_without_secret_headers(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(client, {"type": "webhook"})

    response = await client.post(
        hook["path"] + "?q=1&q=2&one=x",
        content=b"name=Ada&tag=a&tag=b",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "authorization": "Bearer secret",
            "cookie": "s=1",
            "x-custom": "kept",
            "x-api-wait": "true",
        },
    )

    assert response.status_code == 200, response.text
    run_input = response.json()["data"]["input"]
    assert run_input["body"] == {"name": "Ada", "tag": ["a", "b"]}
    assert run_input["query"] == {"q": ["1", "2"], "one": "x"}
    assert run_input["method"] == "POST"
    assert run_input["headers"]["x-custom"] == "kept"
    assert not {"authorization", "cookie", "x-api-key"} & set(run_input["headers"])


async def test_hook_json_body_reaches_the_input(client: httpx.AsyncClient) -> None:
    hook = await _hook(client, {"type": "webhook"})

    response = await client.put(
        hook["path"], json={"order": {"id": 7}}, headers={"x-api-wait": "true"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["input"]["body"] == {"order": {"id": 7}}
    assert response.json()["data"]["input"]["method"] == "PUT"


async def test_hook_multipart_other_than_form_data_is_415(client: httpx.AsyncClient) -> None:
    hook = await _hook(client, {"type": "webhook"})

    response = await client.post(
        hook["path"], content=b"--b--\r\n", headers={"content-type": "multipart/mixed; boundary=b"}
    )

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_hook_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    hook = await _hook(client, {"type": "webhook"})

    response = await client.post(hook["path"], content=b"x" * (1_048_576 + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_hook_of_a_paused_workflow_is_400_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(client, {"type": "webhook"})
    assert (await client.post("/api/v1/workflows/wf_a/pause")).status_code == 200

    response = await client.post(hook["path"], json={})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "INVALID_STATUS",
        "message": "Workflow must be active to run. Current status: paused",
    }
    assert await _runs(client) == []
    [delivery] = await _deliveries(client, hook["id"])
    assert (delivery["verdict"], delivery["reason"]) == (
        "rejected",
        response.json()["error"]["message"],
    )


async def test_hook_of_a_disabled_trigger_is_400_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(client, {"type": "webhook"})
    patched = await client.patch(f"/api/v1/triggers/{hook['id']}", json={"enabled": False})
    assert patched.status_code == 200, patched.text

    response = await client.post(hook["path"], json={})

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "INVALID_STATUS", "message": "Trigger is disabled"}
    assert await _runs(client) == []


async def test_inbox_lists_masked_and_replays_after_the_secret_is_fixed(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": "github", "signingSecret": "wrong one"}
    )
    refused = await client.post(
        hook["path"],
        content=b"Hello, World!",
        headers={
            "x-hub-signature-256": GITHUB_SIGNATURE,
            "x-api-key": "fgk_not_for_the_inbox",
            "content-type": "text/plain",
        },
    )
    assert refused.status_code == 401
    [delivery] = await _deliveries(client, hook["id"])

    early = await client.post(f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay")
    fixed = await client.patch(
        f"/api/v1/triggers/{hook['id']}", json={"signingSecret": GITHUB_SECRET}
    )
    replayed = await client.post(
        f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay"
    )

    assert delivery["method"] == "POST"
    assert delivery["path"] == hook["path"]
    assert delivery["body"] == "Hello, World!"
    assert delivery["headers"]["x-hub-signature-256"] == "***"
    assert delivery["headers"]["x-api-key"] == "***"
    assert delivery["headers"]["content-type"] == "text/plain"
    assert (delivery["verdict"], delivery["reason"]) == (
        "rejected",
        "x-hub-signature-256 does not match",
    )
    assert early.status_code == 400, early.text
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["data"]["signingSecret"] == GITHUB_SECRET
    assert replayed.status_code == 201, replayed.text
    [run] = await _runs(client)
    assert replayed.json()["data"]["runId"] == run["id"]
    newest = (await _deliveries(client, hook["id"]))[0]
    assert (newest["verdict"], newest["runId"]) == ("accepted", run["id"])
    assert newest["reason"] == f"replay of {delivery['id']}"


async def test_inbox_is_paginated_newest_first(client: httpx.AsyncClient) -> None:
    hook = await _hook(client, {"type": "webhook"})
    for n in range(3):
        assert (await client.post(hook["path"], json={"n": n})).status_code == 202

    first = (await client.get(f"/api/v1/triggers/{hook['id']}/deliveries?limit=2")).json()
    second = (
        await client.get(
            f"/api/v1/triggers/{hook['id']}/deliveries",
            params={"limit": 2, "cursor": first["nextCursor"]},
        )
    ).json()

    bodies = [d["body"] for d in first["data"] + second["data"]]
    assert bodies == ['{"n":2}', '{"n":1}', '{"n":0}']
    assert (first["hasMore"], second["hasMore"]) == (True, False)


async def test_inbox_deliveries_older_than_inbox_days_are_pruned(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    hook = await _hook(client, {"type": "webhook"})
    assert (await client.post(hook["path"], json={})).status_code == 202
    assert len(await _deliveries(client, hook["id"])) == 1

    clock.advance(days=7, seconds=1)

    async def empty() -> bool:
        return await _deliveries(client, hook["id"]) == []

    await wait_until(empty, timeout=5)
    assert len(await _runs(client)) == 1


async def test_inbox_foreign_or_unknown_trigger_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/triggers/trg_missing/deliveries")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Trigger not found"
