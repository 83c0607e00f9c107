"""docs/events.md's recipes (issue 10), run as a reader runs them: each block marked
``<!-- example: NAME -->`` goes through ``bash -euo pipefail`` against a real server, with the
venv's ``flowgate`` on PATH. Blocks a reader runs one after the other in one shell get the
variables earlier blocks set (``RUN_ID``); where a reader would look before going on (the run
has reached its wait), the test waits on that condition."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx

from tests import recipes
from tests.conftest import ThreadedServer, wait_until

DOC = recipes.DOCS / "events.md"
BIN = str(Path(sys.executable).parent)


async def _run(name: str, server: ThreadedServer, **env: str) -> tuple[list[Any], str]:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    done = await recipes.run_example(DOC, name, server.url, env={"PATH": path, **env})
    return recipes.json_documents(done.stdout), done.stdout


async def _trigger_waits(client: httpx.AsyncClient, key: str) -> None:
    async def waiting() -> bool:
        response = await client.get(f"/v1/events/{key}")
        return response.status_code == 200 and response.json()["status"] == "waiting"

    await wait_until(waiting)


async def _waiting_order(server: ThreadedServer, client: httpx.AsyncClient) -> str:
    """The approval workflow and a run for order 1001 that waits; the run's id."""
    await _run("approval-workflow", server)
    _, printed = await _run("approval-start", server)
    run_id = printed.strip()
    assert run_id.startswith("run_"), printed
    await _trigger_waits(client, "approval-1001")
    return run_id


def test_docs_events_every_sh_block_is_a_tested_example() -> None:
    assert recipes.example_names(DOC) == [
        "approval-workflow",
        "approval-start",
        "approval-waiting",
        "approval-send",
        "approval-send-cli",
        "approval-done",
        "timeout-continue",
        "approval-cancel",
        "standalone",
        "early-event",
        "strait-requests",
    ]


async def test_docs_approval_workflow_creates_an_active_workflow(server: ThreadedServer) -> None:
    [created], _ = await _run("approval-workflow", server)

    assert created["success"] is True
    assert (created["data"]["id"], created["data"]["status"]) == ("wf_order_approval", "active")


async def test_docs_approval_sent_with_curl_completes_the_run(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    run_id = await _waiting_order(server, client)

    [run, trigger], _ = await _run("approval-waiting", server, RUN_ID=run_id)
    [sent], _ = await _run("approval-send", server, RUN_ID=run_id)
    [done], _ = await _run("approval-done", server, RUN_ID=run_id)

    assert run["data"]["status"] == "waiting"
    assert [(s["id"], s["status"]) for s in run["data"]["steps"]] == [
        ("approval", "waiting"),
        ("decide", "pending"),
    ]
    assert trigger["id"].startswith("evt_")
    assert {k: v for k, v in trigger.items() if k not in ("id", "workflow_step_run_id")} == {
        "event_key": "approval-1001",
        "project_id": "prj_default",
        "source_type": "workflow_step",
        "workflow_run_id": run_id,
        "job_run_id": None,
        "status": "waiting",
        "request_payload": {"orderId": "1001", "question": "Ship order 1001?"},
        "response_payload": None,
        "timeout_secs": 86400,
        "requested_at": trigger["requested_at"],
        "received_at": None,
        "expires_at": trigger["expires_at"],
        "error": None,
        "sent_by": None,
    }
    assert (sent["status"], sent["response_payload"]) == ("received", {"approved": True})
    assert sent["sent_by"].startswith("api-key:")
    assert sent["received_at"] is not None
    assert done["data"]["status"] == "completed"
    assert done["data"]["output"] == {"orderId": "1001", "approved": True}


async def test_docs_approval_sent_with_the_cli_completes_the_run(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    run_id = await _waiting_order(server, client)

    [sent], _ = await _run("approval-send-cli", server, RUN_ID=run_id)
    [done], _ = await _run("approval-done", server, RUN_ID=run_id)

    assert (sent["event_key"], sent["status"]) == ("approval-1001", "received")
    assert sent["response_payload"] == {"approved": True}
    assert done["data"]["status"] == "completed"
    assert done["data"]["output"] == {"orderId": "1001", "approved": True}


async def test_docs_timeout_continue_completes_with_the_timeout_output(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    [_, run], _ = await _run("timeout-continue", server)
    trigger = (await client.get("/v1/events/quick-7")).json()

    assert run["data"]["status"] == "completed"
    assert run["data"]["output"] == {"approved": False, "reason": "no answer"}
    assert (trigger["status"], trigger["error"]) == ("timed_out", "timed out")


async def test_docs_approval_cancel_fails_the_run(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    run_id = await _waiting_order(server, client)

    [done], printed = await _run("approval-cancel", server, RUN_ID=run_id)

    trigger_id, key, status = printed.splitlines()[0].split("\t")
    assert (trigger_id[:4], key, status) == ("evt_", "approval-1001", "canceled")
    assert done["data"]["status"] == "failed"
    assert done["data"]["error"]["code"] == "CANCELED"
    first_step = done["data"]["steps"][0]
    assert (first_step["id"], first_step["status"]) == ("approval", "canceled")


async def test_docs_standalone_wait_is_created_sent_to_and_read(server: ThreadedServer) -> None:
    [created, sent, read], _ = await _run("standalone", server)

    assert (created["status"], created["source_type"]) == ("waiting", "job_run")
    assert created["job_run_id"].startswith("job_")
    assert created["request_payload"] == {"export": 42}
    assert sent["status"] == "received"
    assert read["status"] == "received"
    assert read["response_payload"] == {"file": "s3://exports/42.csv"}


async def test_docs_early_event_completes_a_later_run_at_once(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await _run("approval-workflow", server)

    [curl_sent, cli_sent, run], _ = await _run("early-event", server)
    later = await client.post(
        "/api/v1/workflows/wf_order_approval/run",
        json={"input": {"orderId": "2002"}},
        headers={"x-api-wait": "30"},
    )

    assert (curl_sent["buffered"], curl_sent["event_key"]) == (True, "approval-2001")
    assert (cli_sent["buffered"], cli_sent["event_key"]) == (True, "approval-2002")
    assert run["data"]["status"] == "completed"
    assert run["data"]["output"] == {"orderId": "2001", "approved": True}
    assert later.json()["data"]["output"] == {"orderId": "2002", "approved": False}


async def test_docs_strait_requests_answer_in_straits_shapes(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await _waiting_order(server, client)

    [listed, stats, resolved, streamed, purged], printed = await _run("strait-requests", server)

    assert [t["event_key"] for t in listed["data"]] == ["approval-1001"]
    assert (listed["has_more"], listed["next_cursor"]) == (False, None)
    assert stats == {
        "total_count": 1,
        "waiting_count": 1,
        "received_count": 0,
        "timed_out_count": 0,
        "canceled_count": 0,
        "avg_wait_duration_secs": 0.0,
    }
    assert resolved["resolved"] == 1
    assert [t["status"] for t in resolved["triggers"]] == ["received"]
    assert "event: status\r\ndata: {" in printed or "event: status\ndata: {" in printed
    assert (streamed["event_key"], streamed["status"]) == ("approval-1001", "received")
    assert purged == {"deleted": 0, "dry_run": True, "would_delete": 0}
