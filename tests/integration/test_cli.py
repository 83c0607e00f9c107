"""The ``flowgate`` HTTP commands against a real server (CliRunner is sync; the server has its
own thread and loop, so these tests are plain functions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from flowgate.cli import app
from flowgate.client import Client
from flowgate.documents import document_paths, read_document
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import ORDER_INPUT, simple_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cli(server: ThreadedServer, *args: str, key: str = ADMIN_KEY) -> Result:
    """``flowgate ARGS --url … --key …``; a wide terminal so tables do not fold ids."""
    runner = CliRunner()
    return runner.invoke(
        app,
        [*args, "--url", server.url, "--key", key],
        env={"COLUMNS": "200", "FLOWGATE_URL": None, "FLOWGATE_API_KEY": None},
    )


def sdk(server: ThreadedServer) -> Client:
    return Client(server.url, ADMIN_KEY)


def example_ids() -> set[str]:
    ids = set()
    for path in document_paths(EXAMPLES):
        document = read_document(path)
        assert isinstance(document, dict)
        ids.add(str(document["id"]))
    return ids


def apply_examples(server: ThreadedServer) -> None:
    result = cli(server, "apply", str(EXAMPLES))
    assert result.exit_code == 0, result.output


def sleeping_workflow(workflow_id: str, seconds: float) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": seconds}},
            {"id": "after", "type": "transform", "config": {"mapping": {"woke": True}}},
        ],
    }


def start(server: ThreadedServer, workflow: str, run_input: dict[str, Any]) -> str:
    with sdk(server) as client:
        return str(client.start_run(workflow, run_input)["runId"])


# -- apply --------------------------------------------------------------------------------------


def test_apply_examples_folder_prints_each_workflow_active(server: ThreadedServer) -> None:
    result = cli(server, "apply", str(EXAMPLES))

    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert {line[0] for line in lines} == example_ids()
    assert all(line[2:] == ["v1", "active"] for line in lines)
    assert ["wf_order_total", "Order total", "v1", "active"] in lines


def test_apply_same_folder_twice_keeps_versions(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "apply", str(EXAMPLES))

    assert result.exit_code == 0, result.output
    assert {line.split("\t")[2] for line in result.stdout.splitlines()} == {"v1"}


def test_apply_changed_file_updates_to_new_version(server: ThreadedServer, tmp_path: Path) -> None:
    apply_examples(server)
    changed = {**simple_workflow("wf_order_total"), "name": "Order total"}
    changed.pop("status")
    path = tmp_path / "order.json"
    path.write_text(json.dumps(changed))

    result = cli(server, "apply", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout == "wf_order_total\tOrder total\tv2\tactive\n"


def test_apply_draft_flag_leaves_workflow_draft(server: ThreadedServer) -> None:
    result = cli(server, "apply", str(EXAMPLES / "hello_world.yaml"), "--draft")

    assert result.exit_code == 0, result.output
    assert result.stdout == "wf_hello_world\tHello world\tv1\tdraft\n"


def test_apply_invalid_definition_exits_1_naming_file(
    server: ThreadedServer, tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: wf_broken\nname: Broken\nsteps:\n  - id: a\n    type: no_such_type\n")

    result = cli(server, "apply", str(path))

    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first == f"error: INVALID_REQUEST: Invalid workflow definition ({path})"


def test_apply_unparsable_yaml_exits_1_before_any_request(
    server: ThreadedServer, tmp_path: Path
) -> None:
    (tmp_path / "a_good.yaml").write_text((EXAMPLES / "hello_world.yaml").read_text())
    (tmp_path / "b_bad.yaml").write_text("id: [unclosed\n")

    result = cli(server, "apply", str(tmp_path))

    assert result.exit_code == 1
    assert "b_bad.yaml" in result.stderr
    with sdk(server) as client:
        assert client.list_workflows() == []


# -- run ----------------------------------------------------------------------------------------


def test_run_order_total_wait_exits_0_with_total(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_order_total", "--input", json.dumps(ORDER_INPUT), "--wait")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"subtotal": 25.5, "tax": 2.04, "total": 27.54}
    assert "Calculate Order Total" in result.stderr
    assert "completed" in result.stderr


def test_run_fails_on_purpose_wait_exits_1_with_message(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_fails_on_purpose", "--input", "{}", "--wait")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["code"] == "FAILED"  # the run's error, not null
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        'error: FAILED: This run failed on purpose (send {"ok": true} to pass) (run run_'
    )
    assert last.endswith(" ended failed at step refuse)")


def test_run_sleeping_workflow_wait_follows_until_completed(server: ThreadedServer) -> None:
    with sdk(server) as client:
        client.create_workflow(sleeping_workflow("wf_nap", 1))

    result = cli(server, "run", "wf_nap", "--wait")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"woke": True}


def test_run_without_wait_prints_run_id_then_data(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_hello_world", "-i", '{"name": "Ada"}', "--env", "MODE=test")

    assert result.exit_code == 0, result.output
    run_id, _, data = result.stdout.partition("\n")
    assert run_id.startswith("run_")
    assert json.loads(data) == {
        "runId": run_id,
        "status": json.loads(data)["status"],
        "workflowId": "wf_hello_world",
        "workflowVersion": 1,
    }
    with sdk(server) as client:
        run = client.get_run(run_id, wait_secs=5)
    assert (run.input, run.env) == ({"name": "Ada"}, {"MODE": "***"})


def test_run_started_by_cli_records_source_cli(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_hello_world", "--input", '{"name": "Ada"}')

    assert result.exit_code == 0, result.output
    run_id = result.stdout.partition("\n")[0]
    with sdk(server) as client:
        assert client.get_run(run_id).source == "cli"
        listed = client.list_runs(source="cli")["data"]
    assert isinstance(listed, list)
    assert [item["id"] for item in listed if isinstance(item, dict)] == [run_id]


def test_run_same_idempotency_key_returns_same_run(server: ThreadedServer) -> None:
    apply_examples(server)
    args = ("run", "wf_hello_world", "--input", "{}", "--idempotency-key", "once")

    first = cli(server, *args)
    second = cli(server, *args)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]


def test_run_invalid_input_json_exits_2(server: ThreadedServer) -> None:
    result = cli(server, "run", "wf_order_total", "--input", "{nope")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --input is not valid JSON: ")


def test_run_input_not_object_exits_2(server: ThreadedServer) -> None:
    result = cli(server, "run", "wf_order_total", "--input", "[1, 2]")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --input must be a JSON object")


def test_run_input_failing_schema_exits_1_with_details(server: ThreadedServer) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_order_total", "--input", '{"customerId": 7}')

    assert result.exit_code == 1
    assert result.stderr == (
        "error: VALIDATION_ERROR: Input validation failed\n"
        "  customerId: 7 is not of type 'string'\n"
    )


def test_run_unknown_workflow_exits_1_not_found(server: ThreadedServer) -> None:
    result = cli(server, "run", "wf_nope", "--input", "{}")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: Workflow not found\n"


# -- runs ---------------------------------------------------------------------------------------


def test_runs_list_workflow_filter_shows_only_its_runs(server: ThreadedServer) -> None:
    apply_examples(server)
    hello = start(server, "wf_hello_world", {})
    order = start(server, "wf_order_total", ORDER_INPUT)

    result = cli(server, "runs", "list", "--workflow", "wf_hello_world")

    assert result.exit_code == 0, result.output
    assert hello in result.stdout
    assert order not in result.stdout


def test_runs_list_limit_prints_next_cursor(server: ThreadedServer) -> None:
    apply_examples(server)
    first = start(server, "wf_hello_world", {})
    second = start(server, "wf_hello_world", {})

    result = cli(server, "runs", "list", "--limit", "1")

    assert result.exit_code == 0, result.output
    assert second in result.stdout
    assert first not in result.stdout
    assert result.stderr.startswith("more runs: --cursor ")


def test_runs_list_unknown_status_exits_1_invalid_request(server: ThreadedServer) -> None:
    result = cli(server, "runs", "list", "--status", "sleepy")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_REQUEST: Unknown status 'sleepy'")


def test_runs_show_finished_run_prints_json_and_steps(server: ThreadedServer) -> None:
    apply_examples(server)
    run_id = start(server, "wf_order_total", ORDER_INPUT)
    with sdk(server) as client:
        client.get_run(run_id, wait_secs=5)

    result = cli(server, "runs", "show", run_id)

    assert result.exit_code == 0, result.output
    shown, end = json.JSONDecoder().raw_decode(result.stdout)
    assert (shown["id"], shown["status"], shown["output"]["total"]) == (
        run_id,
        "completed",
        27.54,
    )
    table = result.stdout[end:]
    assert "Calculate Order Total" in table
    assert "completed" in table


def test_runs_show_json_flag_prints_only_json(server: ThreadedServer) -> None:
    apply_examples(server)
    run_id = start(server, "wf_hello_world", {})

    result = cli(server, "runs", "show", run_id, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == run_id


def test_runs_show_unknown_run_exits_1_not_found(server: ThreadedServer) -> None:
    result = cli(server, "runs", "show", "run_nope")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: Run not found\n"


def test_runs_cancel_waiting_run_prints_canceled(server: ThreadedServer) -> None:
    with sdk(server) as client:
        client.create_workflow(sleeping_workflow("wf_long_nap", 300))
    run_id = start(server, "wf_long_nap", {})

    result = cli(server, "runs", "cancel", run_id)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{run_id}\tcanceled\n"


def test_runs_cancel_finished_run_exits_1_conflict(server: ThreadedServer) -> None:
    apply_examples(server)
    run_id = start(server, "wf_hello_world", {})
    with sdk(server) as client:
        assert client.get_run(run_id, wait_secs=5).status == "completed"

    result = cli(server, "runs", "cancel", run_id)

    assert result.exit_code == 1
    assert result.stderr == ("error: CONFLICT: Run has already ended with status completed\n")


# -- keys ---------------------------------------------------------------------------------------


def test_keys_create_prints_secret_that_works(server: ThreadedServer) -> None:
    result = cli(server, "keys", "create", "ci", "--scope", "runs:read", "-s", "workflows:read")

    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("fgk_")
    assert "shown only this once" in result.stderr
    assert "scopes: runs:read, workflows:read" in result.stderr
    assert cli(server, "runs", "list", key=secret).exit_code == 0


def test_keys_create_unknown_scope_exits_1_with_details(server: ThreadedServer) -> None:
    result = cli(server, "keys", "create", "ci", "--scope", "everything")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_REQUEST: Unknown scopes: everything\n")
    assert "  scopes: must be among " in result.stderr


def test_keys_create_past_expiry_exits_1_invalid_request(server: ThreadedServer) -> None:
    result = cli(
        server, "keys", "create", "old", "--scope", "runs:read", "--expires-at",
        "2000-01-01T00:00:00Z",
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == "error: INVALID_REQUEST: expiresAt must be in the future\n"


def test_keys_list_shows_created_key_without_secret(server: ThreadedServer) -> None:
    with sdk(server) as client:
        created = client.create_key("listed", ["runs:read"])

    result = cli(server, "keys", "list")

    assert result.exit_code == 0, result.output
    assert str(created["id"]) in result.stdout
    assert "listed" in result.stdout
    assert str(created["key"]) not in result.stdout


def test_keys_revoke_key_stops_working(server: ThreadedServer) -> None:
    with sdk(server) as client:
        created = client.create_key("doomed", ["runs:read"])

    result = cli(server, "keys", "revoke", str(created["id"]))

    assert result.exit_code == 0, result.output
    assert result.stdout == f"revoked {created['id']} (doomed)\n"
    after = cli(server, "runs", "list", key=str(created["key"]))
    assert after.exit_code == 1
    assert after.stderr.startswith("error: UNAUTHORIZED: ")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("runs", "list"), ("keys", "list"), ("apply", str(EXAMPLES)), ("run", "wf_order_total")],
    ids=["runs-list", "keys-list", "apply", "run"],
)
def test_cli_bad_key_exits_1_unauthorized(server: ThreadedServer, args: tuple[str, ...]) -> None:
    result = cli(server, *args, key="fgk_not_a_real_key")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAUTHORIZED: ")
    assert result.stdout == ""


def test_cli_key_lacking_scope_exits_1_forbidden(server: ThreadedServer) -> None:
    with sdk(server) as client:
        reader = client.create_key("reader", ["runs:read"])

    result = cli(server, "keys", "list", key=str(reader["key"]))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: FORBIDDEN: ")
