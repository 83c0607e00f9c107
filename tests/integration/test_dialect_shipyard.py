"""The Shipyard dialect (DESIGN §4, seed 000): a Shipyard client's "Trigger Fleet" call, with
host and key swapped, starts a run; its env overrides reach the run and exactly the steps named;
every answer is Shipyard's ``{"request": {"id"}, "data": …}``; and docs/migrate/shipyard.md's
commands run as printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests import recipes
from tests.conftest import ThreadedServer
from tests.integration.conftest import create_workflow

DOC = recipes.DOCS / "migrate" / "shipyard.md"
FLEETS = "/orgs/org_default/projects/prj_default/fleets"
#: The request ids of the seed's two examples, sent as X-Request-Id (a client's sane id is kept).
SEED_201_REQUEST_ID = "955939cc-2b90-4b8e-bf23-7375cd87822b"
SEED_400_REQUEST_ID = "1af80dfc-e1b7-459f-9921-e5cb9e08b684"
MAX_BODY = 4096


def _env_seen(config: dict[str, Any], context: Any) -> dict[str, str]:
    """A ``python`` step's view of its env (the step context's ``env``)."""
    return dict(context.env)


#: Registered for ``python`` steps: the server loads this module (FLOWGATE_PYTHON_MODULES).
FLOWGATE_FUNCTIONS = {"env_seen": _env_seen}


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        python_modules="tests.functions,tests.integration.test_dialect_shipyard",
        max_body_bytes=MAX_BODY,
    )


def _seen(step_id: str) -> dict[str, Any]:
    mapping = {name: "{{env." + name + "}}" for name in ("REGION", "MODE", "EXTRA", "region")}
    return {"mapping": {**mapping, "step": step_id}}


FLEET: dict[str, Any] = {
    "id": "wf_fleet",
    "name": "Nightly fleet",
    "status": "active",
    "env": {"REGION": "eu", "MODE": "default"},
    "steps": [
        {"id": "extract", "name": "Extract Vessel", "type": "transform", "config": _seen("a")},
        {"id": "load", "name": "Load Vessel", "type": "transform", "config": _seen("b")},
        {"id": "report", "type": "python", "config": {"function": "env_seen"}},
    ],
}


def _vessel(name: str, **overrides: str) -> dict[str, Any]:
    """A body overriding one vessel's env."""
    return {"vessel_overrides": [{"name": name, "environment_variable_overrides": overrides}]}


def _key(key: str) -> dict[str, str]:
    return {"X-Shipyard-API-Key": key}


async def _fleet_run(
    client: httpx.AsyncClient, body: Any = None, *, fleet: str = "wf_fleet", **headers: str
) -> httpx.Response:
    """The Shipyard call with the admin key (unless headers say otherwise)."""
    sent = {"X-Shipyard-API-Key": str(client.headers["x-api-key"]), **headers}
    return await client.post(
        f"{FLEETS}/{fleet}/fleetruns",
        json=body,
        headers={name.replace("_", "-"): value for name, value in sent.items()},
    )


async def _finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    assert run["status"] == "completed", run
    return run


def _outputs(run: dict[str, Any]) -> dict[str, Any]:
    return {step["id"]: step["output"] for step in run["steps"]}


def _refused(response: httpx.Response, status: int = 400) -> None:
    """Shipyard's failure: the status, ``data: null`` and the reply's own request id."""
    assert response.status_code == status, response.text
    assert response.json() == {"request": {"id": response.headers["x-request-id"]}, "data": None}


async def _deliveries(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/workflows/wf_fleet/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


# -- the seed's "201 - Created Successfully" ---------------------------------------------------


async def test_seed_201_created_successfully_returns_the_ids_and_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)

    response = await client.post(
        f"{FLEETS}/wf_fleet/fleetruns",
        headers={"X-Shipyard-API-Key": str(client.headers["x-api-key"]),
                 "X-Request-Id": SEED_201_REQUEST_ID},
    )  # fmt: skip

    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == SEED_201_REQUEST_ID
    run_id = response.json()["data"]["fleet_run_id"]
    assert run_id.startswith("run_")
    assert response.json() == {
        "request": {"id": SEED_201_REQUEST_ID},
        "data": {
            "fleet_id": "wf_fleet",
            "project_id": "prj_default",
            "org_id": "org_default",
            "fleet_run_id": run_id,
        },
    }
    assert response.headers["x-run-id"] == run_id
    run = await _finished(client, run_id)
    assert (run["source"], run["workflowId"], run["input"]) == ("shipyard", "wf_fleet", {})
    assert (run["env"], run["stepEnv"]) == ({"REGION": "***", "MODE": "***"}, None)


async def test_seed_201_created_successfully_with_x_api_key_and_a_generated_request_id(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)

    response = await client.post(f"{FLEETS}/wf_fleet/fleetruns", content=b"  ")

    assert response.status_code == 201, response.text
    assert response.json()["request"] == {"id": response.headers["x-request-id"]}
    assert response.headers["x-request-id"].startswith("req_")


# -- the seed's "400 - Bad Requests" ------------------------------------------------------------


async def test_seed_400_bad_requests_endpoint_malformed_or_gone(client: httpx.AsyncClient) -> None:
    await create_workflow(client, FLEET)
    await create_workflow(client, {**FLEET, "id": "wf_draft", "name": "draft", "status": "draft"})
    key = _key(str(client.headers["x-api-key"]))
    calls = {
        "unknown fleet": ("POST", f"{FLEETS}/wf_gone/fleetruns"),
        "not active": ("POST", f"{FLEETS}/wf_draft/fleetruns"),
        "other org": ("POST", "/orgs/org_other/projects/prj_default/fleets/wf_fleet/fleetruns"),
        "other project": ("POST", "/orgs/org_default/projects/prj_other/fleets/wf_fleet/fleetruns"),
        "no such path": ("POST", f"{FLEETS}/wf_fleet/fleetrun"),
        "wrong method": ("GET", f"{FLEETS}/wf_fleet/fleetruns"),
        "NUL in the path": ("POST", f"{FLEETS}/wf_%00/fleetruns"),
        "unicode fleet": ("POST", f"{FLEETS}/wf_flotte_\u00e9\U0001f6a2/fleetruns"),
        "huge fleet id": ("POST", f"{FLEETS}/wf_{'x' * 5000}/fleetruns"),
        "unicode org": (
            "POST",
            "/orgs/org_d\u00e9fault/projects/prj_default/fleets/wf_fleet/fleetruns",
        ),
    }

    for case, (method, path) in calls.items():
        response = await client.request(
            method, path, headers={**key, "X-Request-Id": SEED_400_REQUEST_ID}
        )

        assert response.status_code == 400, (case, response.text)
        assert response.json() == {"request": {"id": SEED_400_REQUEST_ID}, "data": None}, case
    runs = (await client.get("/api/v1/runs")).json()["data"]
    assert runs == []


#: Bodies a Shipyard client (or anyone) may send that are not the call's shape: each a 400.
MALFORMED_BODIES = {
    "not JSON": (b"{not json", "INVALID_REQUEST"),
    "not an object": (b"[1, 2]", "INVALID_REQUEST"),
    "NaN": (b'{"environment_variable_overrides": {"A": NaN}}', "INVALID_REQUEST"),
    "NUL": (b'{"environment_variable_overrides": {"A": "\\u0000"}}', "INVALID_REQUEST"),
    "a number": (b'{"environment_variable_overrides": {"A": 1}}', "INVALID_REQUEST"),
    "a boolean": (b'{"environment_variable_overrides": {"A": true}}', "INVALID_REQUEST"),
    "a list of names": (b'{"environment_variable_overrides": ["A"]}', "INVALID_REQUEST"),
    "vessels as an object": (b'{"vessel_overrides": {"name": "load"}}', "INVALID_REQUEST"),
    "vessel without a name": (
        b'{"vessel_overrides": [{"environment_variable_overrides": {}}]}', "INVALID_REQUEST"),
    "vessel name a number": (b'{"vessel_overrides": [{"name": 7}]}', "INVALID_REQUEST"),
    "vessel value an object": (
        b'{"vessel_overrides": [{"name": "load", "environment_variable_overrides": {"A": {}}}]}',
        "INVALID_REQUEST"),
    "a misspelt field": (b'{"enviroment_variable_overrides": {"A": "x"}}', "INVALID_REQUEST"),
    "over FLOWGATE_MAX_BODY_BYTES": (
        b'{"environment_variable_overrides": {"A": "' + b"x" * MAX_BODY + b'"}}',
        "PAYLOAD_TOO_LARGE"),
}  # fmt: skip


async def test_seed_400_bad_requests_malformed_body_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    key = _key(str(client.headers["x-api-key"]))

    for case, (body, code) in MALFORMED_BODIES.items():
        response = await client.post(f"{FLEETS}/wf_fleet/fleetruns", content=body, headers=key)

        assert response.status_code == 400, (case, response.text)
        assert response.json() == {
            "request": {"id": response.headers["x-request-id"]},
            "data": None,
        }
        assert response.headers["x-flowgate-error-code"] == code, case
    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_seed_400_bad_requests_unknown_vessel_is_refused_and_kept_in_the_inbox(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    body = {"vessel_overrides": [{"name": "load vessel", "environment_variable_overrides": {}}]}

    response = await _fleet_run(client, body)

    _refused(response)
    assert (await client.get("/api/v1/runs")).json()["data"] == []
    [delivery] = await _deliveries(client)
    assert (delivery["source"], delivery["verdict"], delivery["runId"]) == (
        "shipyard",
        "rejected",
        None,
    )
    assert delivery["reason"] == (
        "Unknown step 'load vessel': no step of the workflow has this id or name"
    )


# -- authentication, rate limit, quota -----------------------------------------------------------


async def test_fleetrun_missing_or_bad_key_is_401_in_shipyard_shape(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    reader = await client.post("/api/v1/keys", json={"name": "reader", "scopes": ["runs:read"]})
    path = f"{FLEETS}/wf_fleet/fleetruns"

    for headers in (
        {"x-api-key": ""},
        {"x-api-key": "", "X-Shipyard-API-Key": "fgk_not_a_key"},
        {"x-api-key": "fgk_not_a_key"},
        {"x-api-key": "", "X-Shipyard-API-Key": reader.json()["data"]["key"]},
    ):
        response = await client.post(path, content=b"{not json", headers=headers)

        _refused(response, 401)
    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_fleetrun_key_of_another_project_is_400(client: httpx.AsyncClient) -> None:
    await create_workflow(client, FLEET)
    project = (await client.post("/api/v1/projects", json={"name": "Other"})).json()["data"]
    other = await client.post(
        "/api/v1/keys",
        json={"name": "o", "scopes": ["admin"], "projectId": project["id"]},
    )
    key = other.json()["data"]["key"]

    mismatched = await _fleet_run(client, X_Shipyard_API_Key=key)
    foreign_fleet = await client.post(
        f"/orgs/{project['orgId']}/projects/{project['id']}/fleets/wf_fleet/fleetruns",
        headers={"X-Shipyard-API-Key": key},
    )

    _refused(mismatched)
    _refused(foreign_fleet)
    assert foreign_fleet.headers["x-flowgate-error-code"] == "NOT_FOUND"


async def test_fleetrun_over_the_key_rate_limit_is_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    created = await client.post(
        "/api/v1/keys",
        json={"name": "slow", "scopes": ["workflows:execute"], "rateLimitPerMinute": 1},
    )
    key = created.json()["data"]["key"]

    first = await _fleet_run(client, X_Shipyard_API_Key=key)
    second = await _fleet_run(client, X_Shipyard_API_Key=key)

    assert first.status_code == 201, first.text
    _refused(second, 429)
    assert int(second.headers["retry-after"]) >= 1
    assert second.headers["ratelimit-limit"] == "1"


async def test_fleetrun_counts_against_the_project_quota(client: httpx.AsyncClient) -> None:
    await create_workflow(client, FLEET)
    patched = await client.patch("/api/v1/projects/prj_default", json={"runQuotaPerDay": 1})
    assert patched.status_code == 200, patched.text

    first = await _fleet_run(client)
    second = await _fleet_run(client)

    assert first.status_code == 201, first.text
    _refused(second, 429)
    assert second.headers["x-flowgate-error-code"] == "QUOTA_EXCEEDED"


# -- overrides: the run's env and each vessel's own ------------------------------------------------


async def test_fleetrun_overrides_reach_exactly_the_steps_named(client: httpx.AsyncClient) -> None:
    await create_workflow(client, FLEET)
    body = {
        "environment_variable_overrides": {"MODE": "fleet", "EXTRA": None},
        "vessel_overrides": [
            {"name": "Extract Vessel",
             "environment_variable_overrides": {"REGION": "us", "MODE": "", "EXTRA": "x1"}},
            {"name": "load", "environment_variable_overrides": {"REGION": None, "region": "lc"}},
        ],
    }  # fmt: skip

    response = await _fleet_run(client, body)

    assert response.status_code == 201, response.text
    run = await _finished(client, response.json()["data"]["fleet_run_id"])
    assert _outputs(run) == {
        # "" sets empty; an absent name keeps the workflow's env.
        "extract": {"REGION": "us", "MODE": "", "EXTRA": "x1", "region": None, "step": "a"},
        # null keeps the default; names are case-sensitive.
        "load": {"REGION": "eu", "MODE": "fleet", "EXTRA": None, "region": "lc", "step": "b"},
        # No vessel override: the run's env as overridden at the top level.
        "report": {"REGION": "eu", "MODE": "fleet"},
    }
    assert run["env"] == {"REGION": "***", "MODE": "***"}
    assert run["stepEnv"] == {
        "extract": {"REGION": "***", "MODE": "***", "EXTRA": "***"},
        "load": {"region": "***"},
    }


async def test_fleetrun_step_env_reaches_a_python_steps_context(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    body = _vessel("report", REGION="ap")

    response = await _fleet_run(client, body)

    run = await _finished(client, response.json()["data"]["fleet_run_id"])
    assert _outputs(run)["report"] == {"REGION": "ap", "MODE": "default"}
    assert _outputs(run)["extract"]["REGION"] == "eu"


async def test_fleetrun_step_env_values_are_masked_in_error_messages(
    client: httpx.AsyncClient,
) -> None:
    failing = {
        "id": "wf_leaky",
        "name": "leaky",
        "status": "active",
        "steps": [{"id": "call", "type": "python",
                   "config": {"function": "fail_with", "message": "token {{env.TOKEN}}"}}],
    }  # fmt: skip
    await create_workflow(client, failing)
    body = _vessel("call", TOKEN="s3cr3t-t0ken")

    response = await _fleet_run(client, body, fleet="wf_leaky")

    run_id = response.json()["data"]["fleet_run_id"]
    failed = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "RuntimeError: upstream refused: token ***"
    assert "s3cr3t" not in str(failed)


async def test_fleetrun_replay_and_rerun_keep_the_step_env(client: httpx.AsyncClient) -> None:
    await create_workflow(client, FLEET)
    body = _vessel("load", REGION="us")
    response = await _fleet_run(client, body)
    original = await _finished(client, response.json()["data"]["fleet_run_id"])

    replay = await client.post(f"/api/v1/runs/{original['id']}/replay")
    rerun = await client.post(f"/api/v1/runs/{original['id']}/rerun")

    for started, source in ((replay, "replay"), (rerun, "rerun")):
        assert started.status_code == 201, started.text
        copy = await _finished(client, started.json()["data"]["runId"])
        assert copy["source"] == source
        assert copy["stepEnv"] == {"load": {"REGION": "***"}}
        assert _outputs(copy) == _outputs(original)
    assert _outputs(original)["load"]["REGION"] == "us"


async def test_fleetrun_idempotency_key_answers_the_same_fleet_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)

    first = await _fleet_run(client, Idempotency_Key="nightly-2026-11-30")
    again = await _fleet_run(client, Idempotency_Key="nightly-2026-11-30")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["data"] == first.json()["data"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len((await client.get("/api/v1/runs")).json()["data"]) == 1


# -- the inbox -------------------------------------------------------------------------------------


async def test_fleetrun_is_kept_in_the_inbox_with_the_key_masked_and_replays(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, FLEET)
    body = _vessel("load", MODE="inbox")
    response = await _fleet_run(client, body)
    run_id = response.json()["data"]["fleet_run_id"]

    [delivery] = await _deliveries(client)

    assert delivery["headers"]["x-shipyard-api-key"] == "***"
    assert str(client.headers["x-api-key"]) not in str(delivery)
    assert {k: delivery[k] for k in ("source", "verdict", "runId", "method", "path")} == {
        "source": "shipyard",
        "verdict": "accepted",
        "runId": run_id,
        "method": "POST",
        "path": f"{FLEETS}/wf_fleet/fleetruns",
    }
    replayed = await client.post(f"/api/v1/workflows/wf_fleet/deliveries/{delivery['id']}/replay")
    assert replayed.status_code == 201, replayed.text
    copy = await _finished(client, replayed.json()["data"]["runId"])
    assert copy["source"] == "shipyard"
    assert _outputs(copy)["load"]["MODE"] == "inbox"


# -- docs/migrate/shipyard.md ---------------------------------------------------------------------


async def _example(name: str, server: ThreadedServer) -> tuple[str, list[Any]]:
    done = await recipes.run_example(DOC, name, server.url)
    return done.stdout, recipes.json_documents(done.stdout)


async def test_docs_migrate_shipyard_commands_run_as_printed(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    assert recipes.example_names(DOC) == [
        "create-fleet", "trigger-fleet", "trigger-with-overrides", "bad-request", "inbox",
    ]  # fmt: skip

    stdout, _ = await _example("create-fleet", server)
    assert "HTTP 201" in stdout

    stdout, [created] = await _example("trigger-fleet", server)
    assert "HTTP 201" in stdout
    assert created["data"]["fleet_id"] == "wf_nightly_etl"
    assert (created["data"]["org_id"], created["data"]["project_id"]) == (
        "org_default",
        "prj_default",
    )

    _, [run] = await _example("trigger-with-overrides", server)
    data = run["data"]
    assert (data["status"], data["source"]) == ("completed", "shipyard")
    assert _outputs(data) == {
        "extract": {"region": "us", "table": "sales_backfill", "dryRun": "false"},
        "load": {"region": "eu", "table": "sales_backfill", "dryRun": ""},
    }
    assert data["stepEnv"] == {"extract": {"REGION": "***"}, "load": {"DRY_RUN": "***"}}

    stdout, [refused] = await _example("bad-request", server)
    assert "HTTP 400" in stdout
    assert "x-flowgate-error-code: not_found" in stdout.lower()
    assert refused == {"request": {"id": refused["request"]["id"]}, "data": None}

    _, [inbox] = await _example("inbox", server)
    assert [d["verdict"] for d in inbox["data"]] == ["accepted", "accepted"]
    assert all(d["headers"]["x-shipyard-api-key"] == "***" for d in inbox["data"])
