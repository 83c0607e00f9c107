"""docs/migrate/trigger-api.md's recipes, run as a reader runs them: each ```sh block goes through
``bash -euo pipefail`` against a real server, and what the guide says it prints is checked."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests import recipes
from tests.conftest import ThreadedServer

DOC = recipes.DOCS / "migrate" / "trigger-api.md"
EXAMPLES = [
    "create-workflows",
    "basic-request",
    "connection",
    "idempotency",
    "wait",
    "run-status",
    "errors",
    "replay",
]
#: What each block prints per curl call: the body, then ``HTTP <code>`` and maybe a header.
_REPLY = re.compile(r"(.*?)\nHTTP (\d{3})([^\n]*)\n", re.S)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    extra: str


async def _replies(name: str, server: ThreadedServer, *, setup: bool = True) -> list[Reply]:
    """Run the guide's workflow set-up (as a reader would have) and then the block ``name``."""
    if setup:
        await recipes.run_example(DOC, "create-workflows", server.url)
    done = await recipes.run_example(DOC, name, server.url)
    return [
        Reply(status=int(code), body=json.loads(body), extra=extra.strip())
        for body, code, extra in _REPLY.findall(done.stdout)
    ]


def _started(workflow_id: str, run_id: str, status: str = "pending") -> dict[str, Any]:
    return {
        "success": True,
        "data": {
            "runId": run_id,
            "status": status,
            "workflowId": workflow_id,
            "workflowVersion": 1,
        },
    }


def test_docs_migrate_trigger_api_every_sh_block_is_tested() -> None:
    assert recipes.example_names(DOC) == EXAMPLES


async def test_docs_migrate_create_workflows_makes_two_active_workflows(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    invoice, order = await _replies("create-workflows", server, setup=False)

    assert (invoice.status, order.status) == (201, 201)
    assert [(r.body["data"]["id"], r.body["data"]["status"], r.body["data"]["version"])
            for r in (invoice, order)] == [
        ("wf_create_invoice", "active", 1),
        ("wf_process_order", "active", 1),
    ]  # fmt: skip
    listed = (await client.get("/api/v1/workflows")).json()["data"]
    assert sorted(w["name"] for w in listed) == ["Create Invoice", "Process Order"]


async def test_docs_migrate_basic_request_answers_201_pending(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    [reply] = await _replies("basic-request", server)

    run_id = reply.body["data"]["runId"]
    assert (reply.status, reply.body) == (201, _started("wf_create_invoice", run_id))
    run = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 5})).json()["data"]
    assert (run["input"], run["output"]) == (
        {"customerId": "cus_xxx", "amount": 9900, "currency": "usd"},
        {"invoiceId": "inv_xxx"},
    )


async def test_docs_migrate_connection_is_used_and_unknown_one_is_404(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    created, started, unknown = await _replies("connection", server)

    assert (created.status, created.body["data"]["id"]) == (201, "conn_production_stripe")
    assert "credentials" not in created.body["data"]
    assert started.status == 201
    run_id = started.body["data"]["runId"]
    run = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
    assert run["connectionId"] == "conn_production_stripe"
    assert (unknown.status, unknown.body) == (
        404,
        {"success": False, "error": {"code": "NOT_FOUND", "message": "Connection not found"}},
    )


async def test_docs_migrate_idempotency_replays_then_refuses_other_input(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    first, again, other = await _replies("idempotency", server)

    run_id = first.body["data"]["runId"]
    assert (first.status, first.extra, first.body) == (
        201,
        "Idempotent-Replayed:",
        _started("wf_process_order", run_id),
    )
    assert (again.status, again.extra) == (200, "Idempotent-Replayed: true")
    assert again.body["data"]["runId"] == run_id
    assert other.status == 409
    assert other.body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert other.body["error"]["details"] == {
        "runId": run_id,
        "differences": [{"path": ["orderId"], "stored": "order_123", "sent": "order_124"}],
    }
    runs = (await client.get("/api/v1/runs", params={"workflowId": "wf_process_order"})).json()
    assert [r["id"] for r in runs["data"]] == [run_id]


async def test_docs_migrate_wait_answers_200_with_the_completed_run(
    server: ThreadedServer,
) -> None:
    [reply] = await _replies("wait", server)

    run = reply.body["data"]
    assert (reply.status, run["status"], run["output"]) == (
        200,
        "completed",
        {"invoiceId": "inv_xxx"},
    )
    assert run["input"] == {"customerId": "cus_xxx", "amount": 9900, "currency": "usd"}


async def test_docs_migrate_run_status_long_poll_shows_seed_fields(server: ThreadedServer) -> None:
    [reply] = await _replies("run-status", server)

    run = reply.body["data"]
    assert (reply.status, run["status"], run["output"]) == (
        200,
        "completed",
        {"invoiceId": "inv_xxx"},
    )
    assert {"id", "status", "input", "output", "startedAt", "completedAt", "steps"} <= set(run)
    [step] = run["steps"]
    assert (step["id"], step["status"], step["output"]["id"]) == (
        "create-invoice",
        "completed",
        "inv_xxx",
    )
    for stamp in (run["startedAt"], run["completedAt"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)


async def test_docs_migrate_errors_match_the_seed_bodies(server: ThreadedServer) -> None:
    missing, draft, invalid = await _replies("errors", server)

    assert [(r.status, r.body) for r in (missing, draft, invalid)] == [
        (404, {"success": False, "error": {"code": "NOT_FOUND", "message": "Workflow not found"}}),
        (
            400,
            {
                "success": False,
                "error": {
                    "code": "INVALID_STATUS",
                    "message": "Workflow must be active to run. Current status: draft",
                },
            },
        ),
        (
            400,
            {
                "success": False,
                "error": {
                    "code": "VALIDATION_ERROR",
                    "message": "Input validation failed",
                    "details": [{"path": ["customerId"], "message": "Required"}],
                },
            },
        ),
    ]


async def test_docs_migrate_replay_starts_a_new_run_with_the_same_input(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    [reply] = await _replies("replay", server)

    new_id = reply.body["data"]["runId"]
    assert (reply.status, reply.body) == (201, _started("wf_create_invoice", new_id))
    replayed = (await client.get(f"/api/v1/runs/{new_id}", params={"waitSecs": 5})).json()
    assert (replayed["data"]["source"], replayed["data"]["status"]) == ("replay", "completed")
    assert replayed["data"]["input"] == {"customerId": "cus_xxx", "amount": 9900, "currency": "usd"}
