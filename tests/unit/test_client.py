"""flowgate.client against httpx.MockTransport: headers, envelopes, errors (no network I/O)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowgate.client import ApiError, Client
from flowgate.errors import FlowgateError

Handler = Callable[[httpx.Request], httpx.Response]


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"success": True, "data": data})


def fail(status: int, code: str, message: str, details: Any = None) -> httpx.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return httpx.Response(status, json={"success": False, "error": error})


class Recorder:
    """A MockTransport handler answering from a route table and remembering every request."""

    def __init__(self, routes: dict[tuple[str, str], Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return fail(404, "NOT_FOUND", "Not found")
        return answer(request) if callable(answer) else answer

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


def make_client(recorder: Recorder, **kwargs: Any) -> Client:
    return Client(
        "http://flowgate.test/", "fgk_secret", transport=httpx.MockTransport(recorder), **kwargs
    )


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def test_client_any_request_sends_api_key_header() -> None:
    recorder = Recorder({("GET", "/api/v1/keys"): ok([])})

    make_client(recorder).list_keys()

    assert recorder.requests[0].headers["x-api-key"] == "fgk_secret"
    assert str(recorder.requests[0].url) == "http://flowgate.test/api/v1/keys"


def test_client_no_arguments_reads_url_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWGATE_URL", "http://env.test:9000")
    monkeypatch.setenv("FLOWGATE_API_KEY", "fgk_from_env")
    recorder = Recorder({("GET", "/api/v1/keys"): ok([])})

    Client(transport=httpx.MockTransport(recorder)).list_keys()

    assert str(recorder.requests[0].url) == "http://env.test:9000/api/v1/keys"
    assert recorder.requests[0].headers["x-api-key"] == "fgk_from_env"


def test_client_no_env_defaults_to_local_server_without_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWGATE_URL", raising=False)
    monkeypatch.delenv("FLOWGATE_API_KEY", raising=False)
    recorder = Recorder({("GET", "/api/v1/keys"): ok([])})

    Client(transport=httpx.MockTransport(recorder)).list_keys()

    assert str(recorder.requests[0].url) == "http://127.0.0.1:8080/api/v1/keys"
    assert "x-api-key" not in recorder.requests[0].headers


def test_get_workflow_success_envelope_returns_data() -> None:
    workflow = {"id": "wf_a", "name": "A", "status": "active", "version": 2}
    recorder = Recorder({("GET", "/api/v1/workflows/wf_a"): ok(workflow)})

    assert make_client(recorder).get_workflow("wf_a") == workflow


def test_get_workflow_name_with_spaces_is_quoted_in_path() -> None:
    recorder = Recorder({("GET", "/api/v1/workflows/Order total"): ok({"id": "wf_x"})})

    make_client(recorder).get_workflow("Order total")

    assert recorder.requests[0].url.raw_path == b"/api/v1/workflows/Order%20total"


def test_get_workflow_error_envelope_raises_api_error_with_fields() -> None:
    recorder = Recorder({})

    with pytest.raises(ApiError) as caught:
        make_client(recorder).get_workflow("wf_missing")

    error = caught.value
    assert isinstance(error, FlowgateError)
    assert (error.status, error.code, error.message, error.details) == (
        404,
        "NOT_FOUND",
        "Not found",
        None,
    )
    assert str(error) == "NOT_FOUND: Not found"


def test_start_run_validation_error_raises_api_error_with_details() -> None:
    details = [{"path": ["customerId"], "message": "Required"}]
    recorder = Recorder(
        {
            ("POST", "/api/v1/workflows/wf_a/run"): fail(
                400, "VALIDATION_ERROR", "Input validation failed", details
            )
        }
    )

    with pytest.raises(ApiError) as caught:
        make_client(recorder).start_run("wf_a", {})

    assert (caught.value.status, caught.value.code, caught.value.details) == (
        400,
        "VALIDATION_ERROR",
        details,
    )


def test_start_run_all_options_sends_body_and_wait_header() -> None:
    started = {"runId": "run_1", "status": "completed"}
    recorder = Recorder({("POST", "/api/v1/workflows/wf_a/run"): ok(started)})

    data = make_client(recorder).start_run(
        "wf_a", {"n": 1}, env={"MODE": "x"}, idempotency_key="k1", priority=5, wait=True
    )

    request = recorder.requests[0]
    assert data == started
    assert body(request) == {
        "input": {"n": 1},
        "env": {"MODE": "x"},
        "idempotencyKey": "k1",
        "priority": 5,
    }
    assert request.headers["x-api-wait"] == "true"


def test_start_run_no_options_sends_empty_body_and_no_wait_header() -> None:
    recorder = Recorder(
        {("POST", "/api/v1/workflows/wf_a/run"): ok({"runId": "run_1", "status": "pending"}, 201)}
    )

    make_client(recorder).start_run("wf_a")

    assert body(recorder.requests[0]) == {}
    assert "x-api-wait" not in recorder.requests[0].headers


@pytest.mark.parametrize(("wait", "header"), [(5, "5"), (2.5, "2.5"), (False, "false")])
def test_start_run_wait_value_sets_header(wait: float | bool, header: str) -> None:
    recorder = Recorder({("POST", "/api/v1/workflows/wf_a/run"): ok({"runId": "run_1"}, 202)})

    make_client(recorder).start_run("wf_a", wait=wait)

    assert recorder.requests[0].headers["x-api-wait"] == header


def test_get_run_wait_secs_sends_query_parameter() -> None:
    recorder = Recorder({("GET", "/api/v1/runs/run_1"): ok({"id": "run_1"})})

    make_client(recorder).get_run("run_1", wait_secs=1)

    assert recorder.requests[0].url.params["waitSecs"] == "1"


def test_list_runs_filters_returns_whole_page() -> None:
    page = {"success": True, "data": [{"id": "run_1"}], "hasMore": True, "nextCursor": "c2"}
    recorder = Recorder({("GET", "/api/v1/runs"): httpx.Response(200, json=page)})

    result = make_client(recorder).list_runs(
        workflowId="wf_a", status="failed", source=None, limit=10
    )

    assert result == page
    assert dict(recorder.requests[0].url.params) == {
        "workflowId": "wf_a",
        "status": "failed",
        "limit": "10",
    }


def test_apply_workflow_existing_id_updates_then_activates() -> None:
    recorder = Recorder(
        {
            ("GET", "/api/v1/workflows/wf_a"): ok({"id": "wf_a", "status": "draft"}),
            ("PUT", "/api/v1/workflows/wf_a"): ok({"id": "wf_a", "status": "draft", "version": 2}),
            ("POST", "/api/v1/workflows/wf_a/activate"): ok(
                {"id": "wf_a", "status": "active", "version": 2}
            ),
        }
    )

    row = make_client(recorder).apply_workflow({"id": "wf_a", "name": "A", "steps": []})

    assert row == {"id": "wf_a", "status": "active", "version": 2}
    assert recorder.calls() == [
        ("GET", "/api/v1/workflows/wf_a"),
        ("PUT", "/api/v1/workflows/wf_a"),
        ("POST", "/api/v1/workflows/wf_a/activate"),
    ]


def test_apply_workflow_unknown_name_creates_without_activate_call_when_active() -> None:
    created = {"id": "wf_new", "name": "New", "status": "active", "version": 1}
    recorder = Recorder({("POST", "/api/v1/workflows"): ok(created, 201)})

    row = make_client(recorder).apply_workflow({"name": "New", "status": "active", "steps": []})

    assert row == created
    assert recorder.calls() == [("GET", "/api/v1/workflows/New"), ("POST", "/api/v1/workflows")]


def test_apply_workflow_draft_does_not_activate() -> None:
    created = {"id": "wf_a", "status": "draft", "version": 1}
    recorder = Recorder({("POST", "/api/v1/workflows"): ok(created, 201)})

    row = make_client(recorder).apply_workflow({"id": "wf_a", "name": "A"}, activate=False)

    assert row == created
    assert ("POST", "/api/v1/workflows/wf_a/activate") not in recorder.calls()


def test_apply_workflow_lookup_forbidden_raises_without_writing() -> None:
    recorder = Recorder(
        {("GET", "/api/v1/workflows/wf_a"): fail(403, "FORBIDDEN", "The API key lacks the scope")}
    )

    with pytest.raises(ApiError) as caught:
        make_client(recorder).apply_workflow({"id": "wf_a", "name": "A"})

    assert caught.value.code == "FORBIDDEN"
    assert recorder.calls() == [("GET", "/api/v1/workflows/wf_a")]


def test_create_key_options_sends_camel_case_body() -> None:
    recorder = Recorder({("POST", "/api/v1/keys"): ok({"id": "key_1", "key": "fgk_x"}, 201)})

    data = make_client(recorder).create_key(
        "ci",
        ["runs:read"],
        project_id="prj_a",
        expires_at="2030-01-01T00:00:00Z",
        rate_limit_per_minute=60,
    )

    assert data == {"id": "key_1", "key": "fgk_x"}
    assert body(recorder.requests[0]) == {
        "name": "ci",
        "scopes": ["runs:read"],
        "projectId": "prj_a",
        "expiresAt": "2030-01-01T00:00:00Z",
        "rateLimitPerMinute": 60,
    }


def test_revoke_key_sends_delete() -> None:
    recorder = Recorder({("DELETE", "/api/v1/keys/key_1"): ok({"id": "key_1"})})

    assert make_client(recorder).revoke_key("key_1") == {"id": "key_1"}


def test_cancel_run_conflict_raises_api_error_409() -> None:
    recorder = Recorder(
        {
            ("POST", "/api/v1/runs/run_1/cancel"): fail(
                409, "CONFLICT", "Run has already ended with status completed"
            )
        }
    )

    with pytest.raises(ApiError) as caught:
        make_client(recorder).cancel_run("run_1")

    assert (caught.value.status, caught.value.code) == (409, "CONFLICT")


def test_client_non_json_reply_raises_api_error_with_http_code() -> None:
    recorder = Recorder({("GET", "/api/v1/keys"): httpx.Response(502, text="Bad Gateway")})

    with pytest.raises(ApiError) as caught:
        make_client(recorder).list_keys()

    assert (caught.value.status, caught.value.code) == (502, "HTTP_502")
    assert "Bad Gateway" in caught.value.message


def test_client_unexpected_data_shape_raises_invalid_response() -> None:
    recorder = Recorder({("GET", "/api/v1/keys"): ok({"not": "a list"})})

    with pytest.raises(ApiError) as caught:
        make_client(recorder).list_keys()

    assert caught.value.code == "INVALID_RESPONSE"


def test_client_connection_refused_raises_connection_error_naming_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    client = Client("http://flowgate.test:1", "k", transport=httpx.MockTransport(refuse))

    with pytest.raises(ApiError) as caught:
        client.list_keys()

    assert caught.value.code == "CONNECTION_ERROR"
    assert caught.value.status is None
    assert "http://flowgate.test:1" in caught.value.message
