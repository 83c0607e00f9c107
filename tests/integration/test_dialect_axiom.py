"""The Axiom dialect (DESIGN §4, seed 003 "Trigger an automation"): ``POST /api/v3/trigger`` and
``POST /api/v3/run-data`` with the key in the body, Axiom's replies and errors, and the runs they
start counted and shown like any other — plus docs/migrate/axiom.md's recipes, run as a reader
runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests import recipes
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow

PUBLIC_URL = "https://flows.example.com"
MAX_BODY = 65_536
DOC = recipes.DOCS / "migrate" / "axiom.md"
QUEUED_MESSAGE = (
    "Axiom could not start due to a lack of available resources. "
    "The task has been queued and will retry in five minutes."
)
TASK_NOT_FOUND = {
    "status": "error",
    "message": "Task not found, please check the name and try again.",
}
MISSING_NAME = {
    "status": "error",
    "message": "Missing task name, you must send the name of the task that you wish to trigger.",
}
BAD_DATA = {"status": "error", "message": "Data must be sent as an array of arrays."}
INVALID_KEY = {"status": "error", "message": "Invalid key"}
SEED_DATA = [
    ["url"],
    ["https://example.com/product/1"],
    ["https://example.com/product/2"],
]


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(public_url=PUBLIC_URL, max_body_bytes=MAX_BODY)


def _automation(
    name: str, workflow_id: str, *, mapping: Any = "{{input}}", **extra: Any
) -> dict[str, Any]:
    """An active workflow whose output is its input (or ``mapping``)."""
    return {
        "id": workflow_id,
        "name": name,
        "status": "active",
        "steps": [{"id": "echo", "type": "transform", "config": {"mapping": mapping}}],
        **extra,
    }


async def _trigger(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    """As an Axiom client calls: no API key header, the key in the JSON body."""
    return await client.post("/api/v3/trigger", json=body, headers={"x-api-key": ""})


async def _run_data(client: httpx.AsyncClient, name: str, key: str = ADMIN_KEY) -> httpx.Response:
    return await client.post(
        "/api/v3/run-data", json={"key": key, "name": name}, headers={"x-api-key": ""}
    )


async def _run(client: httpx.AsyncClient, run_id: str, wait: int = 10) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": wait})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _runs(client: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/runs", params={"workflowId": workflow_id})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["data"]
    return runs


async def _key(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/v1/keys", json={"name": "axiom", **body})
    assert response.status_code == 201, response.text
    secret: str = response.json()["data"]["key"]
    return secret


# --- Trigger: success --------------------------------------------------------------------------


async def test_seed_example_trigger_starts_a_run_and_returns_the_viewer_link(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "My First Automation"})

    assert response.status_code == 200, response.text
    run_id = response.headers["x-run-id"]
    assert response.json() == {"OPEN LINK IN BROWSER": f"{PUBLIC_URL}/ui/runs/{run_id}"}
    run = await _run(client, run_id)
    assert (run["status"], run["source"], run["workflowId"]) == ("completed", "axiom", "wf_first")
    assert run["input"] == {}


async def test_seed_example_with_input_data_gives_the_run_data_and_rows(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Scrape product page", "wf_scrape"))
    body = {"key": ADMIN_KEY, "name": "Scrape product page", "data": SEED_DATA}

    response = await _trigger(client, body)

    assert response.status_code == 200, response.text
    run = await _run(client, response.headers["x-run-id"])
    assert run["status"] == "completed"
    assert (
        run["input"]
        == run["output"]
        == {
            "data": SEED_DATA,
            "rows": [
                {"url": "https://example.com/product/1"},
                {"url": "https://example.com/product/2"},
            ],
        }
    )


async def test_trigger_rows_short_rows_miss_keys_and_extra_cells_are_dropped(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Rows", "wf_rows"))
    data = [
        ["sku", "qty", 3, "sku"],
        ["a-1", 2, True, "shadowed", "extra"],
        ["b-2"],
        [],
        [None, {"nested": ["ok"]}],
    ]

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "Rows", "data": data})

    assert response.status_code == 200, response.text
    run = await _run(client, response.headers["x-run-id"])
    assert run["output"] == {
        "data": data,
        "rows": [
            {"sku": "a-1", "qty": 2, "3": True},
            {"sku": "b-2"},
            {},
            {"sku": None, "qty": {"nested": ["ok"]}},
        ],
    }


async def test_trigger_data_without_rows_gives_empty_rows_and_no_data_an_empty_input(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Rows", "wf_rows"))
    cases: list[tuple[Any, Any]] = [
        ([], {"data": [], "rows": []}),
        ([["only", "a header"]], {"data": [["only", "a header"]], "rows": []}),
        (None, {}),
    ]

    for data, expected in cases:
        response = await _trigger(client, {"key": ADMIN_KEY, "name": "Rows", "data": data})

        assert response.status_code == 200, response.text
        assert (await _run(client, response.headers["x-run-id"]))["output"] == expected, data


async def test_trigger_counts_like_any_run_and_is_kept_in_the_inbox_with_the_key_masked(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Scrape product page", "wf_scrape"))
    key = await _key(client, scopes=["workflows:execute"])
    body = {"key": key, "name": "Scrape product page", "data": SEED_DATA}

    started = await _trigger(client, body)
    [delivery] = (await client.get("/api/v1/workflows/wf_scrape/deliveries")).json()["data"]
    replayed = await client.post(f"/api/v1/workflows/wf_scrape/deliveries/{delivery['id']}/replay")

    run_id = started.headers["x-run-id"]
    assert started.status_code == 200, started.text
    assert {k: delivery[k] for k in ("workflowId", "source", "verdict", "runId", "path")} == {
        "workflowId": "wf_scrape",
        "source": "axiom",
        "verdict": "accepted",
        "runId": run_id,
        "path": "/api/v3/trigger",
    }
    assert key not in str(delivery)
    assert httpx.Response(200, content=delivery["body"]).json() == {**body, "key": "***"}
    assert replayed.status_code == 201, replayed.text
    again = await _run(client, replayed.json()["data"]["runId"])
    assert (again["source"], again["input"]) == ("axiom", (await _run(client, run_id))["input"])


async def test_trigger_key_header_is_not_needed_and_a_header_key_is_not_used(
    client: httpx.AsyncClient,
) -> None:
    """The key is the body's: a valid key in ``x-api-key`` does not stand in for a missing one."""
    await create_workflow(client, _automation("My First Automation", "wf_first"))

    response = await client.post("/api/v3/trigger", json={"name": "My First Automation"})

    assert response.status_code == 401
    assert response.json() == INVALID_KEY
    assert await _runs(client, "wf_first") == []


# --- Trigger: queued -----------------------------------------------------------------------------


async def test_seed_queued_reply_when_the_concurrency_slot_is_taken_then_the_run_starts(
    client: httpx.AsyncClient,
) -> None:
    gated = _automation("Gated", "wf_gated", concurrency={"limit": 1})
    gated["steps"].insert(0, {"id": "nap", "type": "sleep", "config": {"seconds": 1}})
    await create_workflow(client, gated)
    body = {"key": ADMIN_KEY, "name": "Gated", "data": [["n"], [1]]}

    first = await _trigger(client, body)
    second = await _trigger(client, body)
    while_queued = await _run_data(client, "Gated")

    assert first.status_code == 200, first.text
    assert list(first.json()) == ["OPEN LINK IN BROWSER"]
    assert second.status_code == 200, second.text
    assert second.json() == {
        "status": "queued",
        "message": QUEUED_MESSAGE,
        "queuedReason": {"kind": "concurrency_key", "key": None, "position": 1, "limit": 1},
    }
    assert while_queued.json() == {"status": "Running", "data": None}
    queued = await _run(client, second.headers["x-run-id"], wait=0)
    assert queued["status"] == "queued"
    finished = await _run(client, second.headers["x-run-id"])
    assert finished["status"] == "completed"
    assert finished["startedAt"] >= (await _run(client, first.headers["x-run-id"]))["completedAt"]
    after = await _run_data(client, "Gated")
    assert after.json() == {"status": "Success", "data": finished["input"]}


# --- Trigger: errors -----------------------------------------------------------------------------


async def test_seed_errors_task_not_found_for_any_other_spelling_or_an_id(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))

    for name in ("my first automation", "My First Automation ", "My  First Automation", "wf_first"):
        response = await _trigger(client, {"key": ADMIN_KEY, "name": name})

        assert (response.status_code, response.json()) == (404, TASK_NOT_FOUND), name
    assert await _runs(client, "wf_first") == []


async def test_names_with_spaces_are_distinct_workflows(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("My Automation", "wf_one", mapping="one"))
    await create_workflow(client, _automation("My Automation ", "wf_two", mapping="two"))

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "My Automation "})

    assert (await _run(client, response.headers["x-run-id"]))["workflowId"] == "wf_two"


async def test_seed_errors_invalid_key_when_missing_unknown_or_not_a_string(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))
    bodies: list[dict[str, Any]] = [
        {"name": "My First Automation"},
        *({"key": key, "name": "My First Automation"} for key in ("", "fgk_nope", 12345, ["k"])),
    ]

    for body in bodies:
        response = await _trigger(client, body)

        assert (response.status_code, response.json()) == (401, INVALID_KEY), body
    assert await _runs(client, "wf_first") == []


async def test_revoked_and_expired_keys_are_invalid_keys(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))
    revoked = await client.post("/api/v1/keys", json={"name": "r", "scopes": ["admin"]})
    await client.delete(f"/api/v1/keys/{revoked.json()['data']['id']}")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = await _key(client, scopes=["admin"], expiresAt=soon)

    async def expired() -> bool:
        response = await _trigger(client, {"key": expiring, "name": "My First Automation"})
        return response.status_code == 401

    await wait_until(expired, timeout=5, interval=0.25)
    refused = await _trigger(
        client, {"key": revoked.json()["data"]["key"], "name": "My First Automation"}
    )
    assert refused.status_code == 401
    assert refused.json() == INVALID_KEY


async def test_key_without_execute_scope_is_403_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))
    reader = await _key(client, scopes=["runs:read"])

    response = await _trigger(client, {"key": reader, "name": "My First Automation"})

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": "This API key lacks the 'workflows:execute' scope",
    }
    assert await _runs(client, "wf_first") == []


async def test_seed_errors_quota_exceeded(client: httpx.AsyncClient) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "Quota"})).json()["data"]
    key = await _key(client, scopes=["admin"], projectId=project["id"])
    headers = {"x-api-key": key}
    created = await client.post(
        "/api/v1/workflows", json=_automation("Nightly", "wf_nightly"), headers=headers
    )
    assert created.status_code == 201, created.text
    patched = await client.patch(f"/api/v1/projects/{project['id']}", json={"runQuotaPerDay": 1})
    assert patched.status_code == 200, patched.text

    first = await _trigger(client, {"key": key, "name": "Nightly"})
    second = await _trigger(client, {"key": key, "name": "Nightly"})

    assert first.status_code == 200, first.text
    assert second.status_code == 403
    assert second.json() == {"status": "error", "message": "Quota exceeded"}
    listed = await client.get("/api/v1/runs", headers=headers)
    assert len(listed.json()["data"]) == 1


async def test_seed_errors_missing_task_name_when_absent_empty_or_not_a_string(
    client: httpx.AsyncClient,
) -> None:
    bodies: list[dict[str, Any]] = [
        {"key": ADMIN_KEY},
        *({"key": ADMIN_KEY, "name": name} for name in ("", None, 42, ["My First Automation"])),
    ]

    for body in bodies:
        response = await _trigger(client, body)

        assert (response.status_code, response.json()) == (400, MISSING_NAME), body


async def test_data_not_an_array_of_arrays_is_400_and_starts_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Scrape product page", "wf_scrape"))
    not_tables: list[Any] = [
        {"url": "x"},
        "url",
        7,
        ["url", "https://example.com"],
        [["url"], "https://example.com"],
    ]

    for data in not_tables:
        body = {"key": ADMIN_KEY, "name": "Scrape product page", "data": data}
        response = await _trigger(client, body)

        assert (response.status_code, response.json()) == (400, BAD_DATA), data
    assert await _runs(client, "wf_scrape") == []


async def test_paused_workflow_is_400_with_the_native_message_and_kept_as_rejected(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))
    await client.post("/api/v1/workflows/wf_first/pause")

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "My First Automation"})
    [delivery] = (await client.get("/api/v1/workflows/wf_first/deliveries")).json()["data"]

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "message": "Workflow must be active to run. Current status: paused",
    }
    assert (delivery["verdict"], delivery["runId"], delivery["reason"]) == (
        "rejected",
        None,
        "Workflow must be active to run. Current status: paused",
    )


async def test_input_failing_the_schema_is_400_naming_each_failure(
    client: httpx.AsyncClient,
) -> None:
    schema = {
        "type": "object",
        "required": ["rows"],
        "properties": {
            "rows": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": {"type": "string", "pattern": "^https://"}},
                },
            }
        },
    }
    await create_workflow(client, _automation("Scrape", "wf_scrape", inputSchema=schema))
    data = [["url", "note"], ["http://plain.example"], ["", "no url"]]

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "Scrape", "data": data})

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["message"].startswith("Input validation failed: rows.0.url: ")
    assert "rows.1.url" in body["message"]
    assert set(body) == {"status", "message"}


async def test_rate_limited_key_gets_429_with_retry_after(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("My First Automation", "wf_first"))
    key = await _key(client, scopes=["workflows:execute"], rateLimitPerMinute=2)
    body = {"key": key, "name": "My First Automation"}

    replies = [await _trigger(client, body) for _ in range(6)]

    statuses = [r.status_code for r in replies]
    assert statuses[0] == 200
    assert set(statuses) == {200, 429}, statuses
    limited = replies[statuses.index(429)]
    assert limited.json() == {
        "status": "error",
        "message": "Rate limit exceeded. Limit: 2 requests per minute.",
    }
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["ratelimit-limit"] == "2"


HOSTILE_BODIES = [
    (b"x" * (MAX_BODY + 1), 413),
    (b'{"key": ', 400),
    (b"key=fgk&name=My", 400),
    (b'["My First Automation"]', 400),
    (b'"My First Automation"', 400),
    (b"null", 400),
    (b'{"key": "\\u0000", "name": "x"}', 400),
    (b'{"key": "k", "name": "\\ud800"}', 400),
    (b'{"key": "k", "name": 1e999}', 400),
    (b'{"key": "k", "name": 123456789012345678901234567890}', 400),
    ('{"key": "é漢😀", "name": "Ünïcode 漢字"}'.encode(), 401),
]


async def test_hostile_bodies_answer_in_axioms_error_shape(client: httpx.AsyncClient) -> None:
    for content, status in HOSTILE_BODIES:
        response = await client.post(
            "/api/v3/trigger", content=content, headers={"content-type": "text/plain"}
        )

        assert response.status_code == status, (content[:40], response.text)
        assert response.json().keys() == {"status", "message"}, content[:40]
        assert response.json()["status"] == "error"


async def test_empty_body_is_an_invalid_key(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v3/trigger", headers={"x-api-key": ""})

    assert response.status_code == 401
    assert response.json() == INVALID_KEY


async def test_header_repeated_over_many_rows_is_413_not_a_huge_input(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Rows", "wf_rows"))
    header = [f"{'h' * 500}{i}" for i in range(40)]
    data = [header, *([0] * 40 for _ in range(200))]

    response = await _trigger(client, {"key": ADMIN_KEY, "name": "Rows", "data": data})

    assert response.status_code == 413
    assert response.json()["message"].startswith("data is too large once its rows are keyed")
    assert await _runs(client, "wf_rows") == []


async def test_other_methods_and_paths_under_api_v3_answer_in_axioms_shape(
    client: httpx.AsyncClient,
) -> None:
    calls = [
        ("GET", "/api/v3/trigger", 405),
        ("PUT", "/api/v3/run-data", 405),
        ("POST", "/api/v3/nothing-here", 404),
        ("GET", "/api/v3/", 404),
    ]

    for method, path, status in calls:
        response = await client.request(method, path, json={"key": ADMIN_KEY})

        assert response.status_code == status, (method, path)
        assert response.json().keys() == {"status", "message"}
        assert response.json()["status"] == "error"


# --- run-data ------------------------------------------------------------------------------------


async def test_run_data_reports_success_with_the_output_of_the_latest_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _automation("Scrape product page", "wf_scrape"))
    started = await _trigger(
        client, {"key": ADMIN_KEY, "name": "Scrape product page", "data": [["n"], [1]]}
    )
    first = await _run(client, started.headers["x-run-id"])
    native = await client.post("/api/v1/workflows/wf_scrape/run", json={"input": {"n": 2}})
    latest = await _run(client, native.json()["data"]["runId"])

    response = await _run_data(client, "Scrape product page")

    assert first["status"] == latest["status"] == "completed"
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Success", "data": {"n": 2}}
    assert response.headers["x-run-id"] == latest["id"]


async def test_run_data_reports_failure_for_a_failed_run(client: httpx.AsyncClient) -> None:
    failing = _automation("Breaks", "wf_breaks")
    failing["steps"] = [{"id": "boom", "type": "fail", "config": {"message": "no"}}]
    await create_workflow(client, failing)
    started = await _trigger(client, {"key": ADMIN_KEY, "name": "Breaks"})
    assert (await _run(client, started.headers["x-run-id"]))["status"] == "failed"

    response = await _run_data(client, "Breaks")

    assert response.json() == {"status": "Failure", "data": None}


async def test_run_data_without_runs_is_404_no_runs_found(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("Never run", "wf_never"))

    response = await _run_data(client, "Never run")

    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "No runs found"}


async def test_run_data_of_an_unknown_name_is_task_not_found(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("Never run", "wf_never"))

    for name in ("never run", "wf_never", "Never run "):
        response = await _run_data(client, name)

        assert (response.status_code, response.json()) == (404, TASK_NOT_FOUND), name


async def test_run_data_needs_a_valid_key_with_runs_read(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _automation("Never run", "wf_never"))
    executor = await _key(client, scopes=["workflows:execute"])

    unknown = await _run_data(client, "Never run", key="fgk_nope")
    no_scope = await _run_data(client, "Never run", key=executor)
    no_name = await client.post("/api/v3/run-data", json={"key": ADMIN_KEY})

    assert (unknown.status_code, unknown.json()) == (401, INVALID_KEY)
    assert (no_scope.status_code, no_scope.json()) == (
        403,
        {"status": "error", "message": "This API key lacks the 'runs:read' scope"},
    )
    assert (no_name.status_code, no_name.json()) == (400, MISSING_NAME)


# --- docs/migrate/axiom.md -----------------------------------------------------------------------


async def _example(server: ThreadedServer, name: str) -> list[Any]:
    done = await recipes.run_example(DOC, name, server.url)
    return recipes.json_documents(done.stdout)


async def test_docs_axiom_every_sh_block_is_a_tested_example() -> None:
    assert recipes.example_names(DOC) == [
        "create-workflows",
        "trigger",
        "trigger-with-data",
        "run-data",
        "run-api",
        "inbox",
    ]


async def test_docs_axiom_trigger_recipe_returns_the_viewer_link(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await _example(server, "create-workflows")

    [reply] = await _example(server, "trigger")

    [run] = await _runs(client, "wf_my_first_automation")
    assert reply == {"OPEN LINK IN BROWSER": f"{PUBLIC_URL}/ui/runs/{run['id']}"}
    assert run["source"] == "axiom"


async def test_docs_axiom_data_recipes_end_in_success_with_the_rows_output(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    created = await _example(server, "create-workflows")
    [link] = await _example(server, "trigger-with-data")
    [status] = await _example(server, "run-data")

    assert [w["success"] for w in created] == [True, True]
    assert list(link) == ["OPEN LINK IN BROWSER"]
    assert status == {
        "status": "Success",
        "data": {
            "urls": ["https://example.com/product/1", "https://example.com/product/2"],
            "count": 2,
        },
    }


async def test_docs_axiom_run_api_and_inbox_recipes_show_the_run_and_the_masked_call(
    server: ThreadedServer,
) -> None:
    await _example(server, "create-workflows")

    [run] = await _example(server, "run-api")
    [inbox] = await _example(server, "inbox")

    data = run["data"]
    assert (data["status"], data["source"], data["workflowId"]) == (
        "completed",
        "axiom",
        "wf_scrape_product_page",
    )
    assert data["input"]["rows"] == [{"url": "https://example.com/product/3"}]
    assert data["output"] == {"urls": ["https://example.com/product/3"], "count": 1}
    [delivery] = inbox["data"]
    assert (delivery["source"], delivery["runId"]) == ("axiom", data["id"])
    assert '"key":"***"' in delivery["body"]
    assert ADMIN_KEY not in delivery["body"]
