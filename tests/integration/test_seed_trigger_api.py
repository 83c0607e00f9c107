"""The Trigger.dev-style "API Triggers" page (seed 001), request by request: its example bodies
sent to flowgate with only the host and the key swapped, and its documented answers checked.

Where flowgate answers differently on purpose (an idempotency key reused with another input is a
409; undeclared input properties are kept), the test is named after what flowgate does and the
difference is the one docs/migrate/trigger-api.md states. The seed's "Complete Example" workflow
(transform → stripe.createInvoice → email) is run in test_actions.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.clock import FrozenClock
from flowgate.service.core import build_services
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import create_workflow

#: The seed's "Input Validation" workflow; its `steps: [...]` filled with one invoice step.
CREATE_INVOICE: dict[str, Any] = {
    "id": "wf_create_invoice",
    "name": "Create Invoice",
    "status": "active",
    "trigger": {"type": "api"},
    "inputSchema": {
        "type": "object",
        "required": ["customerId", "amount"],
        "properties": {
            "customerId": {"type": "string", "pattern": "^cus_[a-zA-Z0-9]+$"},
            "amount": {"type": "number", "minimum": 100},
            "currency": {"type": "string", "enum": ["usd", "eur", "gbp"], "default": "usd"},
        },
    },
    "steps": [
        {
            "id": "create-invoice",
            "type": "transform",
            "config": {"mapping": {"id": "inv_123", "amount": "{{input.amount}}"}},
        }
    ],
    "output": {"invoiceId": "{{steps.create-invoice.output.id}}"},
}
SEED_INPUT = {"customerId": "cus_xxx", "amount": 9900}
#: What the seed's curl examples send: `-H "Content-Type: application/json"`, or nothing (form).
JSON_TYPE = {"Content-Type": "application/json"}
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _echo(workflow_id: str, **extra: Any) -> dict[str, Any]:
    """An active API-triggered workflow whose output is its input."""
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "trigger": {"type": "api"},
        "steps": [
            {"id": "echo", "type": "transform", "config": {"mapping": {"received": "{{input}}"}}}
        ],
        "output": "{{steps.echo.output.received}}",
        **extra,
    }


def _without_output(definition: dict[str, Any]) -> dict[str, Any]:
    """The run's output is then the last step's."""
    return {k: v for k, v in definition.items() if k != "output"}


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, **extra}}


async def _run(
    client: httpx.AsyncClient, workflow_id: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/workflows/{workflow_id}/run", json=body, headers={**JSON_TYPE, **headers}
    )


async def _finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    got = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})
    run: dict[str, Any] = got.json()["data"]
    assert run["status"] in {"completed", "failed"}, run
    return run


async def _key(client: httpx.AsyncClient, *scopes: str) -> str:
    created = await client.post("/api/v1/keys", json={"name": "app", "scopes": list(scopes)})
    assert created.status_code == 201, created.text
    key: str = created.json()["data"]["key"]
    return key


async def test_seed_basic_request_returns_201_with_the_response_shape(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    started = await _run(client, "wf_create_invoice", {"input": SEED_INPUT})

    assert started.status_code == 201
    run_id = started.json()["data"]["runId"]
    assert started.json() == {
        "success": True,
        "data": {
            "runId": run_id,
            "status": "pending",
            "workflowId": "wf_create_invoice",
            "workflowVersion": 1,
        },
    }
    assert re.fullmatch(r"run_[0-9a-z]+", run_id)
    assert started.headers["x-run-id"] == run_id
    assert started.headers["location"] == f"/api/v1/runs/{run_id}"
    assert started.headers["x-request-id"]


async def test_seed_response_workflow_version_is_the_version_used(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)
    for amount in ("{{input.amount | plus: 1}}", "{{input.amount | plus: 2}}"):
        changed = {**CREATE_INVOICE, "steps": [{**CREATE_INVOICE["steps"][0]}]}
        changed["steps"][0]["config"] = {"mapping": {"id": "inv_123", "amount": amount}}
        assert (await client.put("/api/v1/workflows/wf_create_invoice", json=changed)).is_success

    started = await _run(client, "wf_create_invoice", {"input": SEED_INPUT})

    assert started.status_code == 201
    assert started.json()["data"]["workflowVersion"] == 3


async def test_seed_request_body_with_connection_and_idempotency_key_starts_one_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_any"))
    created = await client.post(
        "/api/v1/connections",
        json={"id": "conn_xxx", "name": "xxx", "type": "stripe", "credentials": {"secretKey": "k"}},
    )
    assert created.status_code == 201, created.text
    body = {"input": {}, "connectionId": "conn_xxx", "idempotencyKey": "unique-key-123"}

    first = await _run(client, "wf_any", body)
    second = await _run(client, "wf_any", body)

    assert (first.status_code, second.status_code) == (201, 200)
    run_id = first.json()["data"]["runId"]
    assert second.json()["data"]["runId"] == run_id
    assert (await _finished(client, run_id))["connectionId"] == "conn_xxx"


async def test_seed_input_data_is_available_as_input_in_steps(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client,
        {
            **_without_output(_echo("wf_order_mail")),
            "steps": [
                {
                    "id": "mail",
                    "type": "transform",
                    "config": {
                        "mapping": {
                            "to": "{{input.customer.email}}",
                            "subject": "Order for {{input.items.0.product}}",
                        }
                    },
                }
            ],
        },
    )
    seed_input = {
        "customer": {"id": "cus_xxx", "email": "customer@example.com"},
        "items": [{"product": "Widget", "quantity": 2, "price": 1999}],
    }

    finished = await _run(client, "wf_order_mail", {"input": seed_input}, **{"x-api-wait": "true"})

    assert finished.status_code == 200
    run = finished.json()["data"]
    assert (run["status"], run["input"], run["output"]) == (
        "completed",
        seed_input,
        {"to": "customer@example.com", "subject": "Order for Widget"},
    )


async def test_seed_input_validation_missing_customer_id_returns_400_required(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    refused = await _run(client, "wf_create_invoice", {"input": {"amount": 9900}})

    assert refused.status_code == 400
    assert refused.json() == _error(
        "VALIDATION_ERROR",
        "Input validation failed",
        details=[{"path": ["customerId"], "message": "Required"}],
    )
    listed = await client.get("/api/v1/runs", params={"workflowId": "wf_create_invoice"})
    assert listed.json()["data"] == []


async def test_seed_input_validation_applies_the_currency_default(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    started = await _run(client, "wf_create_invoice", {"input": SEED_INPUT})

    run = await _finished(client, started.json()["data"]["runId"])
    assert run["input"] == {**SEED_INPUT, "currency": "usd"}


async def test_seed_idempotency_same_key_returns_the_existing_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_process_order"))
    body = {"input": {"orderId": "order_123"}, "idempotencyKey": "process-order-123"}

    first = await _run(client, "wf_process_order", body)
    again = await _run(client, "wf_process_order", body)

    assert (first.status_code, again.status_code) == (201, 200)
    run_id = first.json()["data"]["runId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-run-id"] == run_id
    assert set(again.json()["data"]) == {"runId", "status", "workflowId", "workflowVersion"}
    assert again.json()["data"]["runId"] == run_id
    listed = await client.get("/api/v1/runs", params={"workflowId": "wf_process_order"})
    assert [r["id"] for r in listed.json()["data"]] == [run_id]


async def test_seed_idempotency_same_key_other_input_returns_409_unlike_the_seed(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_process_order"))
    first = await _run(
        client,
        "wf_process_order",
        {"input": {"orderId": "order_123"}, "idempotencyKey": "process-order-123"},
    )

    reused = await _run(
        client,
        "wf_process_order",
        {"input": {"orderId": "order_124"}, "idempotencyKey": "process-order-123"},
    )

    assert reused.status_code == 409
    error = reused.json()["error"]
    assert (error["code"], error["details"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        {
            "runId": first.json()["data"]["runId"],
            "differences": [{"path": ["orderId"], "stored": "order_123", "sent": "order_124"}],
        },
    )


async def test_seed_checking_run_status_returns_the_run_status_response(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)
    run_id = (await _run(client, "wf_create_invoice", {"input": SEED_INPUT})).json()["data"][
        "runId"
    ]
    await _finished(client, run_id)

    got = await client.get(f"/api/v1/runs/{run_id}")

    assert got.status_code == 200
    assert got.json()["success"] is True
    run = got.json()["data"]
    seed_fields = {"id", "status", "input", "output", "startedAt", "completedAt", "steps"}
    assert {k: run[k] for k in seed_fields - {"startedAt", "completedAt", "steps"}} == {
        "id": run_id,
        "status": "completed",
        "input": {**SEED_INPUT, "currency": "usd"},
        "output": {"invoiceId": "inv_123"},
    }
    assert re.fullmatch(ISO_MS, run["startedAt"])
    assert re.fullmatch(ISO_MS, run["completedAt"])
    assert [{k: s[k] for k in ("id", "status", "output")} for s in run["steps"]] == [
        {"id": "create-invoice", "status": "completed", "output": {"id": "inv_123", "amount": 9900}}
    ]


async def test_seed_checking_run_status_failed_run_carries_error_message(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(
        client,
        {
            **_without_output(_echo("wf_failing")),
            "steps": [{"id": "stop", "type": "fail", "config": {"message": "card declined"}}],
        },
    )
    run_id = (await _run(client, "wf_failing", {"input": {}})).json()["data"]["runId"]

    run = await _finished(client, run_id)

    assert run["status"] == "failed"
    assert run["error"] == {"code": "FAILED", "message": "card declined", "stepId": "stop"}


async def test_seed_specifying_a_connection_runs_with_conn_production_stripe(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)
    created = await client.post(
        "/api/v1/connections",
        json={
            "id": "conn_production_stripe",
            "name": "Stripe (live)",
            "type": "stripe",
            "credentials": {"secretKey": "sk_live_xxx"},
        },
    )
    assert created.status_code == 201, created.text

    started = await _run(
        client,
        "wf_create_invoice",
        {"input": SEED_INPUT, "connectionId": "conn_production_stripe"},
    )

    assert started.status_code == 201
    run = await _finished(client, started.json()["data"]["runId"])
    assert run["connectionId"] == "conn_production_stripe"


async def test_seed_specifying_a_connection_unknown_id_returns_404(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    refused = await _run(
        client, "wf_create_invoice", {"input": SEED_INPUT, "connectionId": "conn_xxx"}
    )

    assert refused.status_code == 404
    assert refused.json() == _error("NOT_FOUND", "Connection not found")


async def test_seed_error_handling_workflow_not_found_returns_404(
    client: httpx.AsyncClient,
) -> None:
    refused = await _run(client, "wf_abc123", {"input": SEED_INPUT})

    assert refused.status_code == 404
    assert refused.json() == _error("NOT_FOUND", "Workflow not found")


async def test_seed_error_handling_workflow_not_active_returns_400(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, {**CREATE_INVOICE, "status": "draft"})

    refused = await _run(client, "wf_create_invoice", {"input": SEED_INPUT})

    assert refused.status_code == 400
    assert refused.json() == _error(
        "INVALID_STATUS", "Workflow must be active to run. Current status: draft"
    )


async def test_seed_error_handling_invalid_input_returns_400_with_details(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    refused = await _run(
        client,
        "wf_create_invoice",
        {"input": {"customerId": "customer-1", "amount": 5, "currency": "jpy"}},
    )

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["message"]) == ("VALIDATION_ERROR", "Input validation failed")
    assert sorted(d["path"] for d in error["details"]) == [["amount"], ["currency"], ["customerId"]]
    assert all(isinstance(d["message"], str) and d["message"] for d in error["details"])


@pytest.fixture
async def client_within_one_minute(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server whose clock stands still ten seconds into a minute: every request
    falls in one rate-limit window however long a loaded machine takes to send them."""
    settings = make_settings(workers=0)
    clock = FrozenClock(datetime(2026, 5, 1, 6, 0, 10, tzinfo=UTC))
    app = create_app(settings, services=build_services(settings, clock=clock))
    with ThreadedServer(app) as running:
        async with httpx.AsyncClient(
            base_url=running.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            yield http


async def test_seed_error_handling_rate_limited_after_500_requests_a_minute(
    client_within_one_minute: httpx.AsyncClient,
) -> None:
    client = client_within_one_minute
    key = await _key(client, "workflows:execute")

    async def call() -> httpx.Response:
        return await client.post("/api/v1/workflows/wf_unknown/run", headers={"x-api-key": key})

    answers = [r.status_code for r in await asyncio.gather(*(call() for _ in range(500)))]
    limited = await call()

    assert answers == [404] * 500
    assert limited.status_code == 429
    assert limited.json() == _error(
        "RATE_LIMITED", "Rate limit exceeded. Limit: 500 requests per minute."
    )
    assert limited.headers["ratelimit-limit"] == "500"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["retry-after"] == "50"


async def test_seed_testing_workflows_simulated_stripe_event_without_content_type_runs(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_stripe_test"))
    event = {"type": "invoice.paid", "data": {"object": {"id": "in_test", "amount_paid": 9900}}}
    body = b'{"input": {"type": "invoice.paid", "data": {"object": {"id": "in_test", "amount_paid": 9900}}}}'  # noqa: E501

    started = await client.post(
        "/api/v1/workflows/wf_stripe_test/run", content=body, headers=CURL_FORM
    )

    assert started.status_code == 201, started.text
    run = await _finished(client, started.json()["data"]["runId"])
    assert (run["status"], run["output"]) == ("completed", event)


async def test_seed_scheduled_via_external_scheduler_runs_wf_daily_report(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_daily_report"))

    started = await client.post(
        "/api/v1/workflows/wf_daily_report/run", content=b'{"input":{}}', headers=CURL_FORM
    )

    assert started.status_code == 201, started.text
    assert started.json()["data"]["workflowId"] == "wf_daily_report"
    assert (await _finished(client, started.json()["data"]["runId"]))["source"] == "api"


async def test_seed_on_demand_processing_starts_wf_report_generator(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_report_generator"))
    seed_input = {
        "reportType": "monthly",
        "startDate": "2024-01-01",
        "endDate": "2024-01-31",
        "format": "pdf",
    }

    started = await _run(client, "wf_report_generator", {"input": seed_input})

    assert started.status_code == 201
    run = await _finished(client, started.json()["data"]["runId"])
    assert (run["status"], run["output"]) == ("completed", seed_input)


async def test_seed_batch_processing_parallel_calls_start_one_run_per_key(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _echo("wf_customer_sync"))
    customers = ["cus_a", "cus_b", "cus_c"]

    async def trigger(customer: str) -> httpx.Response:
        body = {"input": {"customerId": customer}, "idempotencyKey": f"sync-{customer}-2024-01-15"}
        return await _run(client, "wf_customer_sync", body)

    first = await asyncio.gather(*(trigger(c) for c in customers))
    again = await asyncio.gather(*(trigger(c) for c in customers))

    assert [r.status_code for r in first] == [201] * 3
    assert [r.status_code for r in again] == [200] * 3
    run_ids = [r.json()["data"]["runId"] for r in first]
    assert len(set(run_ids)) == 3
    assert [r.json()["data"]["runId"] for r in again] == run_ids


async def test_seed_troubleshooting_key_without_execute_scope_returns_403(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)
    key = await _key(client, "runs:read")

    refused = await client.post(
        "/api/v1/workflows/wf_create_invoice/run",
        json={"input": SEED_INPUT},
        headers={"x-api-key": key},
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"


async def test_seed_troubleshooting_undeclared_input_fields_are_kept_not_stripped(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)

    started = await _run(client, "wf_create_invoice", {"input": {**SEED_INPUT, "notes": "rush"}})

    run = await _finished(client, started.json()["data"]["runId"])
    assert run["input"] == {**SEED_INPUT, "currency": "usd", "notes": "rush"}


async def test_seed_run_request_hostile_bodies_are_refused_in_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, CREATE_INVOICE)
    bodies = {
        b"customerId=cus_xxx&amount=9900": 400,
        b'{"input": ["cus_xxx", 9900]}': 400,
        b'{"input": {"customerId": "cus_xxx", "amount": NaN}}': 400,
        b'{"input": {"customerId": "cus_\\u0000", "amount": 9900}}': 400,
        b'{"input": {"customerId": "cus_xxx", "amount": 99999999999999999999999}}': 400,
        b'{"input": {"customerId": "' + b"x" * (1024 * 1024) + b'"}}': 413,
    }

    for body, status in bodies.items():
        refused = await client.post(
            "/api/v1/workflows/wf_create_invoice/run", content=body, headers=JSON_TYPE
        )
        assert refused.status_code == status, (body[:60], refused.text[:200])
        assert refused.json()["success"] is False
        assert refused.json()["error"]["code"] in {"INVALID_REQUEST", "PAYLOAD_TOO_LARGE"}
    listed = await client.get("/api/v1/runs", params={"workflowId": "wf_create_invoice"})
    assert listed.json()["data"] == []
