"""The CLI right after ``make run``: where it finds the server and key (``.flowgate/dev.env``,
``FLOWGATE_PORT``), ``runs replay``/``rerun``, ``run --connection``, and what ``run --wait``
prints when a run does not complete."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner, Result

from flowgate import cli as cli_module
from flowgate.cli import app, resolve_target
from flowgate.client import Client
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import ORDER_INPUT
from tests.integration.test_cli import EXAMPLES, apply_examples, sleeping_workflow

# Every variable the CLI reads to find its server, unset unless a test sets it.
_CLEAN_ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "FLOWGATE_URL": None,
    "FLOWGATE_API_KEY": None,
    "FLOWGATE_HOST": None,
    "FLOWGATE_PORT": None,
    "FLOWGATE_ADMIN_KEY": None,
}


def bare_cli(*args: str, **env: str) -> Result:
    """``flowgate ARGS`` with no ``--url``/``--key``: the CLI finds them itself."""
    return CliRunner().invoke(app, list(args), env={**_CLEAN_ENV, **env})


def cli(server: ThreadedServer, *args: str) -> Result:
    return bare_cli(*args, FLOWGATE_URL=server.url, FLOWGATE_API_KEY=ADMIN_KEY)


def port_of(server: ThreadedServer) -> str:
    return str(urlsplit(server.url).port)


def checkout(root: Path, *lines: str) -> Path:
    """A folder like a checkout after ``make run``: ``.flowgate/dev.env`` holding ``lines``;
    returns a sub-folder to run the CLI from."""
    (root / ".flowgate").mkdir()
    (root / ".flowgate" / "dev.env").write_text("\n".join(lines) + "\n")
    inner = root / "examples" / "nested"
    inner.mkdir(parents=True)
    return inner


def failing_once_workflow(workflow_id: str) -> dict[str, Any]:
    """Fails at ``refuse`` unless the input says ``ok``; ``first`` always completes."""
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "first", "type": "transform", "config": {"mapping": {"one": 1}}},
            {
                "id": "refuse",
                "type": "fail",
                "if": "input.ok != true",
                "config": {"message": "Not this time", "code": "NOPE"},
            },
        ],
    }


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder with no ``.flowgate/dev.env`` above it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# -- where the CLI finds its server --------------------------------------------------------------


def test_cli_in_checkout_uses_dev_env_port_and_admin_key(
    server: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = checkout(
        tmp_path, f"FLOWGATE_ADMIN_KEY={ADMIN_KEY}", f"FLOWGATE_PORT={port_of(server)}"
    )
    monkeypatch.chdir(inner)

    applied = bare_cli("apply", str(EXAMPLES))
    result = bare_cli("run", "wf_order_total", "--input", json.dumps(ORDER_INPUT), "--wait")
    # As the README says, right after `make run`: the example's default input.
    as_is = bare_cli("run", "wf_order_total", "--wait")

    assert applied.exit_code == 0, applied.output
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"subtotal": 25.5, "tax": 2.04, "total": 27.54}
    assert as_is.exit_code == 0, as_is.output
    assert json.loads(as_is.stdout) == json.loads(result.stdout)


def test_cli_in_checkout_dev_env_key_with_port_from_environment(
    server: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(
        checkout(tmp_path, "# written by make run", f"FLOWGATE_ADMIN_KEY={ADMIN_KEY}")
    )

    result = bare_cli("runs", "list", FLOWGATE_PORT=port_of(server))

    assert result.exit_code == 0, result.output
    assert result.stderr == "no runs\n"


def test_cli_flowgate_api_key_beats_dev_env_admin_key(
    server: ThreadedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(checkout(tmp_path, f"FLOWGATE_ADMIN_KEY={ADMIN_KEY}"))

    result = bare_cli(
        "runs", "list", FLOWGATE_PORT=port_of(server), FLOWGATE_API_KEY="fgk_not_a_real_key"
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAUTHORIZED: ")


def test_cli_port_from_environment_outside_checkout(server: ThreadedServer, outside: Path) -> None:
    result = bare_cli("runs", "list", FLOWGATE_PORT=port_of(server), FLOWGATE_API_KEY=ADMIN_KEY)

    assert result.exit_code == 0, result.output
    assert result.stderr == "no runs\n"


def test_cli_unreachable_server_exits_1_saying_where_url_came_from(outside: Path) -> None:
    result = bare_cli("runs", "list", FLOWGATE_PORT="1", FLOWGATE_API_KEY=ADMIN_KEY)

    assert result.exit_code == 1
    first, second = result.stderr.splitlines()[:2]
    assert first.startswith("error: CONNECTION_ERROR: cannot reach flowgate at http://127.0.0.1:1")
    assert "the URL came from FLOWGATE_HOST/FLOWGATE_PORT" in second


def test_resolve_target_order(tmp_path: Path) -> None:
    inner = checkout(
        tmp_path,
        'export FLOWGATE_ADMIN_KEY="fgk_dev"',
        "FLOWGATE_HOST=0.0.0.0",
        "FLOWGATE_PORT=9001",
    )
    env = {"FLOWGATE_PORT": "9002", "FLOWGATE_HOST": "10.0.0.1"}
    bare = tmp_path.parent / f"{tmp_path.name}_bare"
    bare.mkdir()

    from_dev = resolve_target(None, None, environ=env, cwd=inner)
    given = {**env, "FLOWGATE_URL": "http://x:1", "FLOWGATE_API_KEY": "k"}
    from_env = resolve_target(None, None, environ=given, cwd=inner)
    from_options = resolve_target("http://opt:2", "fgk_opt", environ=given, cwd=inner)
    from_port = resolve_target(None, None, environ=env, cwd=bare)
    default = resolve_target(None, None, environ={}, cwd=bare)

    assert (from_dev.url, from_dev.key) == ("http://127.0.0.1:9001", "fgk_dev")
    assert (from_env.url, from_env.key) == ("http://x:1", "k")
    assert (from_options.url, from_options.key) == ("http://opt:2", "fgk_opt")
    assert (from_port.url, from_port.key) == ("http://10.0.0.1:9002", None)
    assert (default.url, default.key) == ("http://127.0.0.1:8080", None)


# -- run --wait on a run that does not complete --------------------------------------------------


def test_run_wait_failing_run_prints_error_not_null_exits_1(
    server: ThreadedServer, outside: Path
) -> None:
    with Client(server.url, ADMIN_KEY) as client:
        client.create_workflow(failing_once_workflow("wf_refuses"))

    result = cli(server, "run", "wf_refuses", "--wait")

    assert result.exit_code == 1
    assert "null" not in result.stdout
    assert json.loads(result.stdout) == {
        "code": "NOPE",
        "message": "Not this time",
        "stepId": "refuse",
    }
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: NOPE: Not this time (run run_")
    assert last.endswith(" ended failed at step refuse)")


def test_run_wait_followed_run_canceled_prints_its_error(
    server: ThreadedServer, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run still going after the first x-api-wait is followed; canceled, it prints its error."""
    monkeypatch.setattr(cli_module, "_FIRST_WAIT_SECS", 0.2)
    following = threading.Event()
    follow = cli_module._follow

    def noting_follow(client: Client, run_id: str) -> Any:
        following.set()
        return follow(client, run_id)

    monkeypatch.setattr(cli_module, "_follow", noting_follow)
    with Client(server.url, ADMIN_KEY) as client:
        client.create_workflow(sleeping_workflow("wf_long_nap", 300))
    results: list[Result] = []
    waiting = threading.Thread(
        target=lambda: results.append(cli(server, "run", "wf_long_nap", "--wait"))
    )

    waiting.start()
    assert following.wait(30), "the CLI never followed the run"
    with Client(server.url, ADMIN_KEY) as client:
        runs = client.list_runs(workflowId="wf_long_nap")["data"]
        assert isinstance(runs, list)
        assert isinstance(runs[0], dict)
        run_id = str(runs[0]["id"])
        client.cancel_run(run_id)
    waiting.join(30)

    result = results[0]
    assert result.exit_code == 1
    assert json.loads(result.stdout)["code"] == "CANCELED"
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: CANCELED: ")
    assert last.endswith(f"(run {run_id} ended canceled)")


# -- run --connection ----------------------------------------------------------------------------


def test_run_connection_is_recorded_on_the_run(server: ThreadedServer, outside: Path) -> None:
    apply_examples(server)
    created = httpx.post(
        f"{server.url}/api/v1/connections",
        headers={"x-api-key": ADMIN_KEY},
        json={
            "id": "conn_dev_http",
            "name": "Dev HTTP",
            "type": "http",
            "config": {"baseUrl": "http://127.0.0.1:9"},
            "credentials": {"headers": {"x-token": "t"}},
        },
    )
    assert created.status_code == 201, created.text

    result = cli(server, "run", "wf_hello_world", "--connection", "conn_dev_http", "--wait")

    assert result.exit_code == 0, result.output
    with Client(server.url, ADMIN_KEY) as client:
        listed = client.list_runs(workflowId="wf_hello_world")["data"]
    assert isinstance(listed, list)
    assert isinstance(listed[0], dict)
    assert listed[0]["connectionId"] == "conn_dev_http"


def test_run_unknown_connection_exits_1_not_found(server: ThreadedServer, outside: Path) -> None:
    apply_examples(server)

    result = cli(server, "run", "wf_hello_world", "--connection", "conn_nope")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: Connection not found\n"


# -- runs replay / rerun -------------------------------------------------------------------------


def test_runs_replay_starts_new_run_with_same_input(server: ThreadedServer, outside: Path) -> None:
    apply_examples(server)
    with Client(server.url, ADMIN_KEY) as client:
        original = client.run("wf_order_total", ORDER_INPUT, wait=True)

    result = cli(server, "runs", "replay", original.id, "--wait")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"subtotal": 25.5, "tax": 2.04, "total": 27.54}
    with Client(server.url, ADMIN_KEY) as client:
        replays = client.list_runs(source="replay")["data"]
    assert isinstance(replays, list)
    assert len(replays) == 1
    assert isinstance(replays[0], dict)
    assert replays[0]["input"] == original.input
    assert replays[0]["id"] != original.id


def test_runs_replay_without_wait_prints_new_run_id_then_data(
    server: ThreadedServer, outside: Path
) -> None:
    apply_examples(server)
    with Client(server.url, ADMIN_KEY) as client:
        original = client.run("wf_hello_world", {}, wait=True)

    result = cli(server, "runs", "replay", original.id)

    assert result.exit_code == 0, result.output
    run_id, _, data = result.stdout.partition("\n")
    assert run_id.startswith("run_")
    assert run_id != original.id
    assert json.loads(data)["runId"] == run_id


def test_runs_rerun_failed_run_reuses_completed_steps(
    server: ThreadedServer, outside: Path
) -> None:
    with Client(server.url, ADMIN_KEY) as client:
        client.create_workflow(failing_once_workflow("wf_refuses"))
        original = client.run("wf_refuses", {}, wait=True)
    assert original.status == "failed"

    result = cli(server, "runs", "rerun", original.id)

    assert result.exit_code == 0, result.output
    run_id = result.stdout.partition("\n")[0]
    with Client(server.url, ADMIN_KEY) as client:
        rerun = client.wait_for_run(run_id, timeout=10)
    assert (rerun.source, rerun.status) == ("rerun", "failed")
    assert [s.id for s in rerun.steps][:1] == ["first"]


def test_runs_rerun_unknown_run_exits_1_not_found(server: ThreadedServer, outside: Path) -> None:
    result = cli(server, "runs", "rerun", "run_nope")

    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: Run not found\n"


def test_runs_replay_usage_error_exits_2(outside: Path) -> None:
    result = bare_cli("runs", "replay")

    assert result.exit_code == 2
