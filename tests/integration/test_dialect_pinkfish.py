"""The Pinkfish dialect (DESIGN §4, seed 002 "Triggers API"): a Pinkfish client that changes
only its base URL and key gets Pinkfish's answers, and each call is a flowgate run like any other
(source ``pinkfish``, rate limit, quota, the run API, the inbox)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests import recipes
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import create_workflow, simple_workflow

PUBLIC = "https://flows.example.com"
MAX_BODY = 64 * 1024
MAX_UPLOAD = 32 * 1024
DOC = recipes.DOCS / "migrate" / "pinkfish.md"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
}
TIMEOUT_BODY = {
    "status": "timeout",
    "message": "Automation execution exceeded 60 second timeout. "
    "Use runId to check results in Run Monitor.",
}
#: The seed's "Hello Triggers" automation: two steps, a markdown and a plain text result.
HELLO_TRIGGERS: dict[str, Any] = {
    "id": "wf_hello_triggers",
    "name": "Hello Triggers",
    "status": "active",
    "steps": [
        {"id": "one", "type": "transform", "config": {"mapping": "# Hello from step 1! 👋"}},
        {
            "id": "two",
            "type": "transform",
            "config": {
                "mapping": {"answer": "Hello from step 2!", "asked": "{{input.user_request}}"}
            },
        },
    ],
}


@pytest.fixture
def server_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC,
        "max_body_bytes": MAX_BODY,
        "max_upload_bytes": MAX_UPLOAD,
        "pinkfish_wait_secs": 10,
        **getattr(request, "param", {}),
    }
    return make_settings(**values)


async def _trigger(client: httpx.AsyncClient, workflow: dict[str, Any]) -> str:
    """An ``api`` trigger of a new workflow: Pinkfish's trigger id."""
    await create_workflow(client, workflow)
    created = await client.post(
        f"/api/v1/workflows/{workflow['id']}/triggers", json={"type": "api"}
    )
    assert created.status_code == 201, created.text
    trigger_id: str = created.json()["data"]["id"]
    return trigger_id


def _pf(key: str = ADMIN_KEY, *, wait: str | None = None, **more: str) -> dict[str, str]:
    """Headers as the seed sends them: the key in X-API-KEY, no flowgate header."""
    headers = {"X-API-KEY": key, **more}
    if wait is not None:
        headers["x-api-wait"] = wait
    return headers


async def _call(server: ThreadedServer, path: str, **kwargs: Any) -> httpx.Response:
    """A request carrying only what a Pinkfish client sends (no flowgate default headers)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.request(kwargs.pop("method", "POST"), path, **kwargs)


async def _run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


async def _inbox(client: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/workflows/{workflow_id}/deliveries")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def _assert_cors(response: httpx.Response) -> None:
    assert {name: response.headers.get(name) for name in CORS} == CORS
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"content-type", "authorization", "x-api-key", "x-api-wait"} <= {
        name.strip() for name in allowed.split(",")
    }


def _assert_error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    _assert_cors(response)
    message: str = body["message"]
    return message


async def test_seed_asynchronous_request_form_encoded_answers_null_with_run_id_headers(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    trigger_id = await _trigger(client, simple_workflow("wf_forms"))

    response = await _call(
        server,
        f"/ext/triggers/{trigger_id}",
        content=b"Hello=World",
        headers=_pf(wait="false", **{"Content-Type": "application/x-www-form-urlencoded"}),
    )

    assert response.status_code == 200, response.text
    assert response.content == b"null"
    assert response.headers["content-type"] == "application/json"
    run_id = response.headers["X-Pf-Run-Id"]
    assert run_id.startswith("run_")
    assert response.headers["X-Run-Id"] == run_id
    assert response.headers["X-Pf-Automation-Id"] == "wf_forms"
    _assert_cors(response)
    run = await _run(client, run_id)
    assert (run["status"], run["source"], run["workflowId"]) == (
        "completed",
        "pinkfish",
        "wf_forms",
    )
    assert run["input"] == {"Hello": "World"}


async def test_seed_synchronous_response_successful_has_pinkfish_shape(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    trigger_id = await _trigger(client, HELLO_TRIGGERS)

    response = await _call(
        server,
        f"/ext/triggers/{trigger_id}",
        json={"user_request": "what is the capital of France"},
        headers=_pf(wait="true"),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    run_id = response.headers["X-Pf-Run-Id"]
    assert response.headers["X-Run-Id"] == run_id
    assert response.headers["X-Pf-Automation-Id"] == "wf_hello_triggers"
    _assert_cors(response)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["started"]), body["started"]
    durations = [result.pop("duration") for result in body["results"]]
    assert all(isinstance(ms, int) and ms >= 0 for ms in durations)
    key_id = (await client.get("/api/v1/keys")).json()["data"][0]["id"]
    assert body == {
        "automationId": "wf_hello_triggers",
        "automationVersion": 1,
        "automationName": "Hello Triggers",
        "id": run_id,
        "type": "TRIGGER",
        "status": "completed",
        "stepMap": {"1": 1, "2": 1},
        "inputs": {"user_request": "what is the capital of France"},
        "triggerId": trigger_id,
        "results": [
            {
                "stepIndex": 1,
                "stepVersion": 1,
                "result": {
                    "stepIndex": 1,
                    "resultType": "plaintext",
                    "result": "# Hello from step 1! 👋",
                },
                "exitCode": 0,
            },
            {
                "stepIndex": 2,
                "stepVersion": 1,
                "result": {
                    "stepIndex": 2,
                    "resultType": "json",
                    "result": {
                        "answer": "Hello from step 2!",
                        "asked": "what is the capital of France",
                    },
                },
                "exitCode": 0,
            },
        ],
        "selectedResult": {
            "answer": "Hello from step 2!",
            "asked": "what is the capital of France",
        },
        "started": body["started"],
        "startedBy": key_id,
    }


async def test_seed_synchronous_response_of_a_failed_run_reports_the_failed_step(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    workflow = {
        **simple_workflow("wf_fails"),
        "steps": [
            {"id": "ok", "type": "transform", "config": {"mapping": {"n": 1}}},
            {"id": "boom", "type": "fail", "config": {"message": "no capital today"}},
            {"id": "never", "type": "transform", "config": {"mapping": {}}},
        ],
    }
    await create_workflow(client, workflow)

    response = await _call(server, "/ext/triggers/wf_fails", json={}, headers=_pf(wait="true"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["triggerId"], body["stepMap"]) == (
        "failed",
        "wf_fails",
        {"1": 1, "2": 1, "3": 1},
    )
    assert [(r["stepIndex"], r["exitCode"]) for r in body["results"]] == [(1, 0), (2, 1)]
    failure = body["results"][1]["result"]
    assert failure["resultType"] == "json"
    assert failure["result"]["message"] == "no capital today"


@pytest.mark.parametrize("server_settings", [{"pinkfish_wait_secs": 0.3}], indirect=True)
async def test_seed_synchronous_response_timeout_answers_the_timeout_body_and_run_goes_on(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    workflow = {
        **simple_workflow("wf_slow"),
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": 1}},
            {"id": "done", "type": "transform", "config": {"mapping": {"woke": True}}},
        ],
    }
    trigger_id = await _trigger(client, workflow)

    response = await _call(server, f"/ext/triggers/{trigger_id}", json={}, headers=_pf(wait="true"))

    assert response.status_code == 200, response.text
    assert response.json() == TIMEOUT_BODY
    run_id = response.headers["X-Pf-Run-Id"]
    assert response.headers["X-Run-Id"] == run_id
    assert response.headers["X-Pf-Automation-Id"] == "wf_slow"
    _assert_cors(response)
    run = await _run(client, run_id)
    assert (run["status"], run["output"]) == ("completed", {"woke": True})


async def test_seed_webhook_triggers_key_in_path_starts_a_run_and_inbox_masks_both_keys(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    trigger_id = await _trigger(client, simple_workflow("wf_linear"))
    seed_body = {"event": "issue_created", "issue_id": "12345", "title": "New feature request"}

    by_path = await _call(server, f"/ext/webhook/{ADMIN_KEY}/triggers/{trigger_id}", json=seed_body)
    by_header = await _call(server, f"/ext/triggers/{trigger_id}", json={"n": 2}, headers=_pf())

    assert (by_path.status_code, by_header.status_code) == (200, 200)
    assert by_path.content == b"null"
    run = await _run(client, by_path.headers["X-Pf-Run-Id"])
    assert (run["status"], run["source"], run["input"]) == ("completed", "pinkfish", seed_body)
    newest, oldest = await _inbox(client, "wf_linear")
    assert {
        k: oldest[k] for k in ("source", "verdict", "triggerId", "runId", "method", "path")
    } == {
        "source": "pinkfish",
        "verdict": "accepted",
        "triggerId": trigger_id,
        "runId": run["id"],
        "method": "POST",
        "path": f"/ext/webhook/***/triggers/{trigger_id}",
    }
    assert newest["path"] == f"/ext/triggers/{trigger_id}"
    assert newest["headers"]["x-api-key"] == "***"
    assert newest["runId"] == by_header.headers["X-Pf-Run-Id"]
    assert ADMIN_KEY not in str(await _inbox(client, "wf_linear"))


async def test_seed_triggering_automations_query_form_and_json_merge_with_body_keys_winning(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_inputs"))
    path = "/ext/triggers/wf_inputs"

    by_get = await _call(server, path + "?city=Paris&tag=a&tag=b", method="GET", headers=_pf())
    form = await _call(
        server,
        path + "?city=Paris&lang=fr",
        content=b"city=Lyon&tag=x&tag=y&empty=",
        headers=_pf(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    as_json = await _call(server, path + "?city=Paris", json={"city": ["Nice"]}, headers=_pf())
    curl_data = await _call(
        server,  # curl --data '{...}' without a Content-Type sends the form type
        path,
        content=b'{"user_request": "hi"}',
        headers=_pf(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    untyped = await _call(server, path, content=b'{"n": "\xc3\xa9\xe2\x9c\x93"}', headers=_pf())

    inputs = [
        (await _run(client, r.headers["X-Pf-Run-Id"]))["input"]
        for r in (by_get, form, as_json, curl_data, untyped)
    ]
    assert inputs == [
        {"city": "Paris", "tag": ["a", "b"]},
        {"city": "Lyon", "lang": "fr", "tag": ["x", "y"], "empty": ""},
        {"city": ["Nice"]},
        {"user_request": "hi"},
        {"n": "é✓"},
    ]


async def test_seed_multipart_file_parts_are_stored_and_served_to_the_project_only(
    server: ThreadedServer, client: httpx.AsyncClient, server_settings: Settings
) -> None:
    trigger_id = await _trigger(client, simple_workflow("wf_files"))

    response = await _call(
        server,
        f"/ext/triggers/{trigger_id}",
        data={"note": "quarterly"},
        files={"report": ("q3.csv", b"a,b\n1,2\n", "text/csv")},
        headers=_pf(wait="true"),
    )

    assert response.status_code == 200, response.text
    inputs = response.json()["inputs"]
    url = inputs["report"]["url"]
    assert url.startswith(f"{PUBLIC}/api/v1/files/file_")
    assert inputs == {
        "note": "quarterly",
        "report": {
            "name": "report",
            "filename": "q3.csv",
            "contentType": "text/csv",
            "size": 8,
            "url": url,
        },
    }
    served = await client.get(url.removeprefix(PUBLIC))
    assert (served.status_code, served.content) == (200, b"a,b\n1,2\n")
    project = (await client.post("/api/v1/projects", json={"name": "Other"})).json()["data"]
    other = await client.post(
        "/api/v1/keys", json={"name": "o", "scopes": ["admin"], "projectId": project["id"]}
    )
    foreign = await client.get(
        url.removeprefix(PUBLIC), headers={"x-api-key": other.json()["data"]["key"]}
    )
    assert foreign.status_code == 404
    [delivery] = await _inbox(client, "wf_files")
    assert delivery["verdict"] == "accepted"
    assert '"filename":"q3.csv"' in delivery["body"]


async def test_multipart_file_over_the_upload_limit_is_413_and_keeps_nothing(
    server: ThreadedServer, client: httpx.AsyncClient, server_settings: Settings
) -> None:
    trigger_id = await _trigger(client, simple_workflow("wf_big_files"))

    too_big = await _call(
        server,
        f"/ext/triggers/{trigger_id}",
        files={"big": ("big.bin", b"x" * (MAX_UPLOAD + 1), "application/octet-stream")},
        headers=_pf(),
    )
    unknown = await _call(
        server,
        "/ext/triggers/trg_unknown",
        files={"small": ("s.txt", b"hello", "text/plain")},
        headers=_pf(),
    )

    _assert_error(too_big, 413, "Payload Too Large")
    _assert_error(unknown, 404, "Not Found")
    uploads = server_settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_seed_authentication_errors_are_401_in_pinkfish_shape(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    trigger_id = await _trigger(client, simple_workflow("wf_auth"))

    missing = await _call(server, f"/ext/triggers/{trigger_id}", json={})
    wrong = await _call(server, f"/ext/triggers/{trigger_id}", json={}, headers=_pf("fgk_nope"))
    wrong_in_path = await _call(server, f"/ext/webhook/fgk_nope/triggers/{trigger_id}", json={})

    for response in (missing, wrong, wrong_in_path):
        _assert_error(response, 401, "Unauthorized")
    assert (await client.get("/api/v1/runs")).json()["data"] == []


#: ``(status, error, path, request)``: hostile and malformed calls, each refused before a run.
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_STRICT = "/ext/triggers/wf_strict"
BAD_CALLS: list[tuple[int, str, str, dict[str, Any]]] = [
    (404, "Not Found", "/ext/triggers/trg_nothing", {}),
    (404, "Not Found", "/ext/triggers/wf_nothing", {}),
    (404, "Not Found", "/ext/elsewhere", {}),
    (404, "Not Found", "/ext/triggers/" + "é" * 300, {}),
    (404, "Not Found", "/ext/triggers/trg_" + "x" * 300, {"files": {"f": ("f", b"1")}}),
    (400, "Bad Request", "/ext/triggers/wf_draft", {}),
    (400, "Bad Request", _STRICT, {"content": b'{"a":', "headers": {"Content-Type": "text/json"}}),
    (400, "Bad Request", _STRICT, {"json": [1, 2]}),
    (400, "Bad Request", _STRICT, {"json": {"a": "\u0000"}}),
    (400, "Bad Request", _STRICT, {"content": b"a=%00", "headers": _FORM}),
    (400, "Bad Request", _STRICT, {"content": b"a=\xff", "headers": _FORM}),
    (400, "Bad Request", _STRICT, {"content": b"&".join([b"a=1"] * 1001), "headers": _FORM}),
    (400, "Bad Request", _STRICT + "?x=%00", {}),
    (400, "Bad Request", _STRICT, {"headers": {"x-api-wait": "sometimes"}}),
    (400, "Bad Request", _STRICT, {"headers": {"Idempotency-Key": "k" * 501}}),
    (405, "Method Not Allowed", _STRICT, {"method": "PUT"}),
    (413, "Payload Too Large", _STRICT, {"content": b"x" * (MAX_BODY + 1), "headers": _FORM}),
    (
        415,
        "Unsupported Media Type",
        _STRICT,
        {"content": b"words", "headers": {"Content-Type": "text/plain"}},
    ),
]


async def test_bad_calls_are_answered_in_pinkfish_shape_and_start_nothing(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_strict"))
    await create_workflow(client, simple_workflow("wf_draft", status="draft"))

    for status, error, path, request in BAD_CALLS:
        extra = {name: value for name, value in request.items() if name != "headers"}
        headers = _pf(**request.get("headers", {}))
        response = await _call(server, path, headers=headers, **extra)
        message = _assert_error(response, status, error)
        if path.endswith("wf_draft"):
            assert message == "Workflow must be active to run. Current status: draft"

    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_cors_preflight_is_answered_on_both_urls(server: ThreadedServer) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, x-api-wait, content-type",
    }

    for path in ("/ext/triggers/trg_any", f"/ext/webhook/{ADMIN_KEY}/triggers/trg_any"):
        response = await _call(server, path, method="OPTIONS", headers=preflight)
        assert response.status_code == 204, response.text
        _assert_cors(response)


async def test_every_call_counts_against_the_keys_execute_rate_limit(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_limited"))
    created = await client.post(
        "/api/v1/keys",
        json={"name": "pf", "scopes": ["workflows:execute"], "rateLimitPerMinute": 1},
    )
    key = created.json()["data"]["key"]

    first = await _call(server, "/ext/triggers/wf_limited", headers=_pf(key))
    second = await _call(server, f"/ext/webhook/{key}/triggers/wf_limited")

    assert first.status_code == 200, first.text
    _assert_error(second, 429, "Too Many Requests")
    assert int(second.headers["Retry-After"]) > 0


async def test_every_call_counts_against_the_projects_quota_and_a_refusal_is_kept(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "Quota"})).json()["data"]
    created = await client.post(
        "/api/v1/keys", json={"name": "q", "scopes": ["admin"], "projectId": project["id"]}
    )
    key = created.json()["data"]["key"]
    await client.patch(f"/api/v1/projects/{project['id']}", json={"runQuotaPerDay": 1})
    theirs = {"x-api-key": key}
    await client.post("/api/v1/workflows", json=simple_workflow("wf_quota"), headers=theirs)

    first = await _call(server, "/ext/triggers/wf_quota", headers=_pf(key))
    second = await _call(server, "/ext/triggers/wf_quota", headers=_pf(key))

    assert first.status_code == 200, first.text
    assert "quota" in _assert_error(second, 429, "Too Many Requests")
    inbox = await client.get("/api/v1/workflows/wf_quota/deliveries", headers=theirs)
    assert [d["verdict"] for d in inbox.json()["data"]] == ["rejected", "accepted"]


async def test_seed_chaining_a_sync_answer_is_valid_input_for_the_next_call(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    first_id = await _trigger(client, HELLO_TRIGGERS)
    second = {
        **simple_workflow("wf_next"),
        "steps": [
            {
                "id": "pick",
                "type": "transform",
                "config": {
                    "mapping": {
                        "from": "{{input.automationName}}",
                        "answer": "{{input.selectedResult.answer}}",
                    }
                },
            }
        ],
    }
    second_id = await _trigger(client, second)

    first = await _call(
        server, f"/ext/triggers/{first_id}", json={"user_request": "hi"}, headers=_pf(wait="true")
    )
    chained = await _call(
        server, f"/ext/triggers/{second_id}", json=first.json(), headers=_pf(wait="true")
    )

    assert chained.status_code == 200, chained.text
    assert chained.json()["inputs"] == first.json()
    assert chained.json()["selectedResult"] == {
        "from": "Hello Triggers",
        "answer": "Hello from step 2!",
    }


async def test_idempotency_key_replays_the_same_run(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_once"))
    headers = _pf(**{"Idempotency-Key": "order-42"})

    first = await _call(server, "/ext/triggers/wf_once", json={"n": 1}, headers=headers)
    again = await _call(server, "/ext/triggers/wf_once", json={"n": 1}, headers=headers)
    other = await _call(server, "/ext/triggers/wf_once", json={"n": 2}, headers=headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["X-Pf-Run-Id"] == first.headers["X-Pf-Run-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    _assert_error(other, 409, "Conflict")


async def test_waiting_needs_runs_read_and_is_refused_before_a_run_starts(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_scoped"))
    created = await client.post("/api/v1/keys", json={"name": "x", "scopes": ["workflows:execute"]})
    key = created.json()["data"]["key"]

    waited = await _call(server, "/ext/triggers/wf_scoped", headers=_pf(key, wait="true"))
    fired = await _call(server, "/ext/triggers/wf_scoped", headers=_pf(key))

    _assert_error(waited, 403, "Forbidden")
    assert fired.status_code == 200
    assert len((await client.get("/api/v1/runs")).json()["data"]) == 1


async def test_docs_migrate_pinkfish_every_recipe_runs(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    names = recipes.example_names(DOC)
    assert names == ["setup", "sync-call", "async-call", "webhook-call"]

    setup = await recipes.run_example(DOC, "setup", server.url)
    trigger_id = setup.stdout.strip().splitlines()[-1]
    assert trigger_id.startswith("trg_")
    env = {"TRIGGER_ID": trigger_id}
    sync = await recipes.run_example(DOC, "sync-call", server.url, env=env)
    fired = await recipes.run_example(DOC, "async-call", server.url, env=env)
    hooked = await recipes.run_example(DOC, "webhook-call", server.url, env=env)

    [answer] = recipes.json_documents(sync.stdout)
    assert (answer["status"], answer["automationName"], answer["triggerId"]) == (
        "completed",
        "Hello Triggers",
        trigger_id,
    )
    assert answer["selectedResult"]["asked"] == "what is the capital of France"
    assert fired.stdout.splitlines()[0] == "null"
    [run] = recipes.json_documents(fired.stdout)
    assert (run["data"]["status"], run["data"]["source"]) == ("completed", "pinkfish")
    assert run["data"]["input"] == {"Hello": "World"}
    assert hooked.stdout.strip() == "null"
    inbox = await _inbox(client, "wf_hello_triggers")
    assert len(inbox) == 3
    assert inbox[0]["path"] == f"/ext/webhook/***/triggers/{trigger_id}"
