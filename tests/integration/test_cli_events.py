"""``flowgate events list|show|send|cancel`` against a real server, through the SDK: the same
conventions as ``runs`` (JSON or a table on stdout, ``error: CODE: message`` on stderr and exit 1
for an API error, exit 2 for a bad option)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from flowgate.cli import app
from flowgate.client import Client, NotFound
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until


def cli(server: ThreadedServer, *args: str, key: str = ADMIN_KEY) -> Result:
    """``flowgate ARGS --url … --key …``; a wide terminal so tables do not fold keys."""
    return CliRunner().invoke(
        app,
        [*args, "--url", server.url, "--key", key],
        env={"COLUMNS": "200", "FLOWGATE_URL": None, "FLOWGATE_API_KEY": None},
    )


APPROVAL: dict[str, Any] = {
    "id": "wf_approval",
    "name": "Approval",
    "status": "active",
    "steps": [
        {
            "id": "wait",
            "type": "wait_for_event",
            "config": {"eventKey": "approval-{{input.orderId}}", "timeoutSecs": 3600},
        },
        {
            "id": "decide",
            "type": "transform",
            "config": {"mapping": {"approved": "{{steps.wait.output.approved}}"}},
        },
    ],
}


@pytest.fixture
def sdk(server: ThreadedServer) -> Iterator[Client]:
    with Client(server.url, ADMIN_KEY) as client:
        client.create_workflow(APPROVAL)
        yield client


async def waiting_run(sdk: Client, order_id: str) -> str:
    """Start an approval run; its id once its trigger waits."""
    run_id = sdk.run("wf_approval", {"orderId": order_id}).run_id

    def waiting() -> bool:
        try:
            return sdk.get_event(f"approval-{order_id}").status == "waiting"
        except NotFound:
            return False

    await wait_until(waiting)
    return run_id


def table_rows(result: Result) -> list[list[str]]:
    """The rows of a printed table (after its header and rule), split on runs of spaces."""
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    return lines[2:]


# -- send -----------------------------------------------------------------------------------------


async def test_events_send_prints_the_received_trigger_and_the_run_completes(
    server: ThreadedServer, sdk: Client
) -> None:
    run_id = await waiting_run(sdk, "1")

    result = cli(server, "events", "send", "approval-1", "--payload", '{"approved": true}')
    run = sdk.wait_for_run(run_id, timeout=10)

    assert result.exit_code == 0, result.output
    sent = json.loads(result.stdout)
    assert (sent["event_key"], sent["status"]) == ("approval-1", "received")
    assert (sent["response_payload"], sent["workflow_run_id"]) == ({"approved": True}, run_id)
    assert result.stderr == f"received: run {run_id} resumes\n"
    assert (run.status, run.output) == ("completed", {"approved": True})


async def test_events_send_without_payload_sends_null(server: ThreadedServer, sdk: Client) -> None:
    run_id = await waiting_run(sdk, "2")

    result = cli(server, "events", "send", "approval-2")
    run = sdk.wait_for_run(run_id, timeout=10)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["response_payload"] is None
    assert run.steps[0].output is None


def test_events_send_buffer_secs_with_nothing_waiting_keeps_the_event(
    server: ThreadedServer, sdk: Client
) -> None:
    result = cli(
        server, "events", "send", "approval-3", "-p", '{"approved": true}', "--buffer-secs", "300"
    )
    run = sdk.run("wf_approval", {"orderId": "3"}, wait=10)

    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert (reply["buffered"], reply["event_key"]) == (True, "approval-3")
    assert reply["expires_at"].endswith("Z")
    assert result.stderr.startswith("nothing waits for approval-3 yet: the event is kept until ")
    assert (run.status, run.output) == ("completed", {"approved": True})


def test_events_send_keeps_the_event_by_the_projects_default_buffer(
    server: ThreadedServer,
) -> None:
    patched = httpx.patch(
        f"{server.url}/api/v1/projects/prj_default",
        json={"eventBufferSecs": 300},
        headers={"x-api-key": ADMIN_KEY},
    )
    assert patched.status_code == 200, patched.text

    result = cli(server, "events", "send", "approval-default", "--payload", "1")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["buffered"] is True
    assert result.stderr.startswith("nothing waits for approval-default yet")


def test_events_send_unknown_key_exits_1_with_not_found(server: ThreadedServer) -> None:
    result = cli(server, "events", "send", "nobody-waits", "--payload", "1")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: NOT_FOUND: event trigger not found\n"


async def test_events_send_other_payload_after_received_exits_1_with_conflict(
    server: ThreadedServer, sdk: Client
) -> None:
    await waiting_run(sdk, "4")
    first = cli(server, "events", "send", "approval-4", "--payload", '{"approved": true}')

    again = cli(server, "events", "send", "approval-4", "--payload", '{"approved": true}')
    other = cli(server, "events", "send", "approval-4", "--payload", '{"approved": false}')

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert json.loads(again.stdout)["id"] == json.loads(first.stdout)["id"]
    assert other.exit_code == 1
    assert other.stderr == "error: CONFLICT: event trigger is not in waiting state\n"


def test_events_send_invalid_payload_json_exits_2_before_any_request(
    server: ThreadedServer,
) -> None:
    result = cli(server, "events", "send", "approval-5", "--payload", "{approved: yes}")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --payload is not valid JSON: ")


def test_events_send_bad_buffer_secs_exits_1_with_the_servers_message(
    server: ThreadedServer,
) -> None:
    result = cli(server, "events", "send", "approval-6", "--buffer-secs", "-5")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_REQUEST: buffer_secs must be between ")


def test_events_send_with_a_read_only_key_exits_1_with_forbidden(
    server: ThreadedServer, sdk: Client
) -> None:
    reader = str(sdk.create_key("reader", ["runs:read"])["key"])

    result = cli(server, "events", "send", "approval-7", "--payload", "1", key=reader)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: FORBIDDEN: ")


# -- show -----------------------------------------------------------------------------------------


async def test_events_show_prints_the_trigger_as_the_api_sends_it(
    server: ThreadedServer, sdk: Client
) -> None:
    run_id = await waiting_run(sdk, "8")

    result = cli(server, "events", "show", "approval-8")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown == sdk.get_event("approval-8").raw
    assert (shown["status"], shown["workflow_run_id"]) == ("waiting", run_id)
    assert set(shown) >= {
        "id",
        "event_key",
        "project_id",
        "source_type",
        "workflow_run_id",
        "workflow_step_run_id",
        "job_run_id",
        "status",
        "request_payload",
        "response_payload",
        "timeout_secs",
        "requested_at",
        "received_at",
        "expires_at",
        "error",
    }


def test_events_show_unknown_key_exits_1_with_not_found(server: ThreadedServer) -> None:
    result = cli(server, "events", "show", "approval-none")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: event trigger not found\n"


def test_events_show_uses_flowgate_url_and_api_key_from_the_environment(
    server: ThreadedServer,
) -> None:
    result = CliRunner().invoke(
        app,
        ["events", "show", "approval-none"],
        env={"FLOWGATE_URL": server.url, "FLOWGATE_API_KEY": "fgk_wrong"},
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAUTHORIZED: ")


# -- list -----------------------------------------------------------------------------------------


async def test_events_list_prints_a_row_per_trigger_newest_first(
    server: ThreadedServer, sdk: Client
) -> None:
    first = await waiting_run(sdk, "10")
    second = await waiting_run(sdk, "11")
    sdk.send_event("approval-11", {"approved": True})

    result = cli(server, "events", "list")

    assert result.exit_code == 0, result.output
    rows = table_rows(result)
    assert [row[:3] for row in rows] == [
        ["approval-11", "received", second],
        ["approval-10", "waiting", first],
    ]


async def test_events_list_filters_by_status_and_run(server: ThreadedServer, sdk: Client) -> None:
    first = await waiting_run(sdk, "12")
    await waiting_run(sdk, "13")
    sdk.send_event("approval-13", {"approved": True})

    waiting = cli(server, "events", "list", "--status", "waiting")
    of_run = cli(server, "events", "list", "--run", first)

    assert [row[0] for row in table_rows(waiting)] == ["approval-12"]
    assert [row[0] for row in table_rows(of_run)] == ["approval-12"]


async def test_events_list_limit_prints_the_next_cursor_which_gives_the_rest(
    server: ThreadedServer, sdk: Client
) -> None:
    await waiting_run(sdk, "14")
    await waiting_run(sdk, "15")

    page_one = cli(server, "events", "list", "--limit", "1")
    hint = page_one.stderr.strip()
    assert hint.startswith("more event triggers: --cursor "), page_one.output
    page_two = cli(server, "events", "list", "--limit", "1", "--cursor", hint.split()[-1])

    assert [row[0] for row in table_rows(page_one)] == ["approval-15"]
    assert [row[0] for row in table_rows(page_two)] == ["approval-14"]
    assert page_two.stderr == ""


def test_events_list_with_none_says_so_on_stderr(server: ThreadedServer) -> None:
    result = cli(server, "events", "list")

    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", "no event triggers\n")


def test_events_list_bad_status_exits_1_with_the_servers_message(server: ThreadedServer) -> None:
    result = cli(server, "events", "list", "--status", "done")

    assert result.exit_code == 1
    assert result.stderr == "error: INVALID_REQUEST: invalid status: done\n"


# -- cancel ---------------------------------------------------------------------------------------


async def test_events_cancel_prints_the_canceled_trigger_and_fails_the_run(
    server: ThreadedServer, sdk: Client
) -> None:
    run_id = await waiting_run(sdk, "20")
    trigger_id = sdk.get_event("approval-20").id

    result = cli(server, "events", "cancel", "approval-20")
    run = sdk.wait_for_run(run_id, timeout=10)
    again = cli(server, "events", "cancel", "approval-20")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{trigger_id}\tapproval-20\tcanceled\n"
    assert (run.status, run.steps[0].status) == ("failed", "canceled")
    assert again.exit_code == 1
    assert again.stderr == "error: CONFLICT: event trigger is not in waiting state\n"


def test_events_cancel_unknown_key_exits_1_with_not_found(server: ThreadedServer) -> None:
    result = cli(server, "events", "cancel", "approval-none")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: event trigger not found\n"
