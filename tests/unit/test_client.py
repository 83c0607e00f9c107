"""flowgate.client against httpx.MockTransport: headers, envelopes, errors (no network I/O)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from flowgate import client
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


RUN_SUMMARY: dict[str, Any] = {"id": "run_1", "workflowId": "wf_a", "status": "running"}


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
    recorder = Recorder({("GET", "/api/v1/runs/run_1"): ok(RUN_SUMMARY)})

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


# -- the shared core: error classes, typed results, retries, long-polls (no I/O) -----------------

DESIGN_CODES = [
    ("INVALID_REQUEST", client.InvalidRequest, 400),
    ("VALIDATION_ERROR", client.ValidationFailed, 400),
    ("INVALID_STATUS", client.InvalidStatus, 400),
    ("TEMPLATE_ERROR", client.TemplateError, 400),
    ("UNAUTHORIZED", client.Unauthorized, 401),
    ("FORBIDDEN", client.Forbidden, 403),
    ("NOT_FOUND", client.NotFound, 404),
    ("METHOD_NOT_ALLOWED", client.MethodNotAllowed, 405),
    ("IDEMPOTENCY_KEY_REUSED", client.IdempotencyKeyReused, 409),
    ("CONFLICT", client.Conflict, 409),
    ("PAYLOAD_TOO_LARGE", client.PayloadTooLarge, 413),
    ("UNSUPPORTED_MEDIA_TYPE", client.UnsupportedMediaType, 415),
    ("RATE_LIMITED", client.RateLimited, 429),
    ("QUOTA_EXCEEDED", client.QuotaExceeded, 429),
    ("INTERNAL", client.Internal, 500),
]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUN_DETAIL: dict[str, Any] = {
    "id": "run_1",
    "workflowId": "wf_a",
    "workflowVersion": 2,
    "status": "completed",
    "input": {"n": 1},
    "env": {"MODE": "***"},
    "output": {"n": 1},
    "error": None,
    "source": "cli",
    "parentRunId": None,
    "createdAt": "2026-01-01T12:00:00.000Z",
    "startedAt": "2026-01-01T12:00:00.250Z",
    "completedAt": "2026-01-01T12:00:01.000Z",
    "steps": [
        {
            "id": "only",
            "name": "Only",
            "type": "transform",
            "status": "completed",
            "attempt": 1,
            "output": {"n": 1},
            "error": None,
            "startedAt": "2026-01-01T12:00:00.500Z",
            "completedAt": "2026-01-01T12:00:00.750Z",
            "durationMs": 250,
        }
    ],
}


@pytest.mark.parametrize(("code", "cls", "status"), DESIGN_CODES)
def test_client_error_envelope_raises_class_of_its_code(
    code: str, cls: type[ApiError], status: int
) -> None:
    answer = fail(status, code, "message", {"k": 1})
    answer.headers["x-request-id"] = "req_1"
    recorder = Recorder({("GET", "/api/v1/keys"): answer})

    with pytest.raises(cls) as caught:
        make_client(recorder, max_retries=0).list_keys()

    error = caught.value
    assert type(error) is cls
    assert isinstance(error, ApiError)
    assert (error.code, error.status, error.message, error.details, error.request_id) == (
        code,
        status,
        "message",
        {"k": 1},
        "req_1",
    )


def test_error_class_unknown_code_is_api_error() -> None:
    assert client.error_class("SOMETHING_NEW") is ApiError


def test_client_rate_limited_reply_carries_retry_after_seconds() -> None:
    answer = fail(429, "RATE_LIMITED", "Rate limit exceeded. Limit: 1 requests per minute.")
    answer.headers["retry-after"] = "17"
    recorder = Recorder({("GET", "/api/v1/keys"): answer})

    with pytest.raises(client.RateLimited) as caught:
        make_client(recorder, max_retries=0).list_keys()

    assert caught.value.retry_after == 17.0
    assert len(recorder.requests) == 1


def test_run_from_json_detail_builds_typed_run_with_steps_and_raw() -> None:
    run = client.Run.from_json(RUN_DETAIL)

    assert run == client.Run(
        id="run_1",
        workflow_id="wf_a",
        workflow_version=2,
        status="completed",
        input={"n": 1},
        env={"MODE": "***"},
        output={"n": 1},
        error=None,
        source="cli",
        parent_run_id=None,
        created_at=NOW,
        started_at=datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC),
        completed_at=datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC),
        steps=(
            client.Step(
                id="only",
                name="Only",
                type="transform",
                status="completed",
                attempt=1,
                output={"n": 1},
                error=None,
                started_at=datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC),
                completed_at=datetime(2026, 1, 1, 12, 0, 0, 750_000, tzinfo=UTC),
                duration_ms=250,
                raw=RUN_DETAIL["steps"][0],
            ),
        ),
        raw=RUN_DETAIL,
    )
    assert run.raw is RUN_DETAIL
    assert run.ended


def test_run_from_json_summary_without_steps_has_no_steps_and_is_not_ended() -> None:
    run = client.Run.from_json(RUN_SUMMARY)

    assert (run.steps, run.ended, run.created_at, run.env) == ((), False, None, {})


def test_run_from_json_missing_id_raises_invalid_response() -> None:
    with pytest.raises(ApiError) as caught:
        client.Run.from_json({"workflowId": "wf_a", "status": "running"})

    assert caught.value.code == "INVALID_RESPONSE"


def test_run_idempotent_replay_returns_started_run_marked_replayed() -> None:
    started: dict[str, Any] = {
        "runId": "run_1",
        "status": "running",
        "workflowId": "wf_a",
        "workflowVersion": 1,
    }
    answer = httpx.Response(
        200, json={"success": True, "data": started}, headers={"Idempotent-Replayed": "true"}
    )
    recorder = Recorder({("POST", "/api/v1/workflows/wf_a/run"): answer})

    result = make_client(recorder).run("wf_a", {"n": 1}, idempotency_key="k1")

    assert result == client.StartedRun(
        run_id="run_1",
        status="running",
        workflow_id="wf_a",
        workflow_version=1,
        replayed=True,
        raw=started,
    )
    assert "x-api-wait" not in recorder.requests[0].headers


def test_run_wait_returns_whole_run() -> None:
    recorder = Recorder({("POST", "/api/v1/workflows/wf_a/run"): ok(RUN_DETAIL)})

    result = make_client(recorder).run("wf_a", {"n": 1}, wait=5)

    assert isinstance(result, client.Run)
    assert (result.id, result.output) == ("run_1", {"n": 1})
    assert recorder.requests[0].headers["x-api-wait"] == "5"


@pytest.mark.parametrize("wait", [0, -1.5])
def test_run_wait_not_positive_raises_value_error_before_any_request(wait: float) -> None:
    recorder = Recorder({})

    with pytest.raises(ValueError, match="positive"):
        make_client(recorder).run("wf_a", wait=wait)

    assert recorder.requests == []


def test_client_source_sends_source_header() -> None:
    recorder = Recorder({("GET", "/api/v1/keys"): ok([])})

    make_client(recorder, source="cli").list_keys()

    assert recorder.requests[0].headers["x-flowgate-source"] == "cli"


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "attempt", "retryable", "expected"),
    [
        (429, "RATE_LIMITED", "2", 0, True, 2.0),
        (429, "RATE_LIMITED", "0", 0, True, 0.0),
        (503, None, None, 0, True, 0.5),
        (503, None, None, 2, True, 2.0),
        (503, None, "1.5", 1, True, 1.5),
        (429, "RATE_LIMITED", "Thu, 01 Jan 2026 12:00:05 GMT", 0, True, 5.0),
        (429, "RATE_LIMITED", "2", 3, True, None),
        (429, "RATE_LIMITED", "61", 0, True, None),
        (429, "QUOTA_EXCEEDED", "2", 0, True, None),
        (429, "RATE_LIMITED", "2", 0, False, None),
        (503, None, None, 0, False, None),
        (500, "INTERNAL", "2", 0, True, None),
        (502, None, "2", 0, True, None),
        (409, "CONFLICT", None, 0, True, None),
    ],
)
def test_retry_delay_decides_by_status_code_header_and_attempt(
    status: int,
    code: str | None,
    retry_after: str | None,
    attempt: int,
    retryable: bool,
    expected: float | None,
) -> None:
    delay = client.retry_delay(
        status=status,
        code=code,
        retry_after=retry_after,
        attempt=attempt,
        retryable=retryable,
        policy=client.RetryPolicy(),
        now=NOW,
    )

    assert delay == expected


def test_parse_retry_after_garbage_is_none() -> None:
    assert client.parse_retry_after("soon", now=NOW) is None


def _reply(status: int, content: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json=content, headers=headers, request=httpx.Request("GET", "http://t/")
    )


def _rate_limited(retry_after: str) -> httpx.Response:
    envelope = {"success": False, "error": {"code": "RATE_LIMITED", "message": "Rate limit"}}
    return _reply(429, envelope, **{"retry-after": retry_after})


def _drive(flow: Any, replies: list[httpx.Response]) -> tuple[Any, list[Any]]:
    """Run a flow by hand: each request gets the next reply; sleeps are only recorded."""
    effects: list[Any] = []
    sent: Any = None
    try:
        while True:
            effect = flow.send(sent)
            effects.append(effect)
            sent = replies.pop(0) if isinstance(effect, client._Request) else None
    except StopIteration as stop:
        return stop.value, effects


def _kinds(effects: list[Any]) -> list[Any]:
    return [e.seconds if isinstance(e, client._Sleep) else e.method for e in effects]


def test_exchange_rate_limited_sleeps_retry_after_then_repeats() -> None:
    calls = client._Calls(client.RetryPolicy(), wall_clock=lambda: NOW)
    replies = [_rate_limited("2"), _rate_limited("1"), _reply(200, {"success": True, "data": []})]

    result, effects = _drive(calls.list_keys(), replies)

    assert result == []
    assert _kinds(effects) == ["GET", 2.0, "GET", 1.0, "GET"]


def test_exchange_unavailable_past_max_retries_raises_last_reply() -> None:
    calls = client._Calls(client.RetryPolicy(max_retries=2), wall_clock=lambda: NOW)
    replies = [_reply(503, None) for _ in range(3)]

    with pytest.raises(ApiError) as caught:
        _drive(calls.list_keys(), replies)

    assert (caught.value.status, caught.value.code) == (503, "HTTP_503")
    assert replies == []


def test_exchange_start_run_without_idempotency_key_is_not_retried() -> None:
    calls = client._Calls(client.RetryPolicy(), wall_clock=lambda: NOW)
    flow = calls.run("wf_a", {"input": {}}, wait=False)

    with pytest.raises(client.RateLimited):
        _drive(flow, [_rate_limited("0")])


def test_exchange_start_run_with_idempotency_key_is_retried() -> None:
    calls = client._Calls(client.RetryPolicy(), wall_clock=lambda: NOW)
    started = {"runId": "run_1", "status": "pending", "workflowId": "wf_a", "workflowVersion": 1}
    flow = calls.run("wf_a", {"idempotencyKey": "k1"}, wait=False)

    result, effects = _drive(
        flow, [_reply(503, None), _reply(201, {"success": True, "data": started})]
    )

    assert result.run_id == "run_1"
    assert _kinds(effects) == ["POST", 0.5, "POST"]


@pytest.mark.parametrize("path", ["/api/v1/runs/run_1/replay", "/api/v1/runs/run_1/rerun"])
def test_exchange_replay_and_rerun_are_not_retried(path: str) -> None:
    calls = client._Calls(client.RetryPolicy(), wall_clock=lambda: NOW)
    flow = calls.replay("run_1") if path.endswith("replay") else calls.rerun("run_1")

    with pytest.raises(client.RateLimited):
        _drive(flow, [_rate_limited("0")])


class FakeClock:
    """Monotonic seconds that move only when a long-poll "takes" time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _polls(clock: FakeClock, *answers: tuple[str, float]) -> list[httpx.Response]:
    """Run replies of these statuses; reading each moves the clock by its seconds."""
    replies: list[httpx.Response] = []
    for status, seconds in answers:
        response = _reply(200, {"success": True, "data": {**RUN_SUMMARY, "status": status}})
        replies.append(_Ticking(response, clock, seconds))
    return replies


class _Ticking(httpx.Response):
    """A reply whose arrival (its first read) is ``seconds`` after its request left."""

    def __init__(self, response: httpx.Response, clock: FakeClock, seconds: float) -> None:
        super().__init__(response.status_code, content=response.content, request=response.request)
        self._clock, self._seconds = clock, seconds

    def json(self, **kwargs: Any) -> Any:
        self._clock.now += self._seconds
        self._seconds = 0.0
        return super().json(**kwargs)


def _wait_secs(effects: list[Any]) -> list[str | None]:
    return [(e.params or {}).get("waitSecs") for e in effects if isinstance(e, client._Request)]


def test_wait_for_run_long_polls_until_the_run_ends() -> None:
    clock = FakeClock()
    calls = client._Calls(client.RetryPolicy(), clock=clock)
    replies = _polls(clock, ("running", 30), ("running", 30), ("completed", 5))

    run, effects = _drive(calls.wait_for_run("run_1", timeout=100), replies)

    assert run.status == "completed"
    assert _wait_secs(effects) == ["30", "30", "30"]
    assert not any(isinstance(e, client._Sleep) for e in effects)


def test_wait_for_run_early_answers_pause_between_polls() -> None:
    clock = FakeClock()
    calls = client._Calls(client.RetryPolicy(), clock=clock)
    replies = _polls(clock, ("running", 0.05), ("completed", 0))

    run, effects = _drive(calls.wait_for_run("run_1", timeout=10), replies)

    assert run.ended
    assert _kinds(effects) == ["GET", pytest.approx(0.2), "GET"]


def test_wait_for_run_timeout_passes_returns_unfinished_run() -> None:
    clock = FakeClock()
    calls = client._Calls(client.RetryPolicy(), clock=clock)
    replies = _polls(clock, ("running", 2), ("running", 0.5))

    run, effects = _drive(calls.wait_for_run("run_1", timeout=2.5), replies)

    assert (run.status, run.ended) == ("running", False)
    assert _wait_secs(effects) == ["2.5", "0.5"]


def test_wait_for_run_zero_timeout_gets_once_without_waiting() -> None:
    clock = FakeClock()
    calls = client._Calls(client.RetryPolicy(), clock=clock)

    run, effects = _drive(calls.wait_for_run("run_1", timeout=0), _polls(clock, ("running", 0)))

    assert not run.ended
    assert _wait_secs(effects) == [None]


# -- the async twin -------------------------------------------------------------------------------


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


#: Methods that yield as the server streams: an iterator in ``Client``, an async one here.
STREAMS = {"follow_run"}


def test_async_client_has_the_same_methods_and_signatures_as_client() -> None:
    sync = _public_methods(Client)
    asynchronous = _public_methods(client.AsyncClient)
    sync["aclose"] = sync.pop("close")

    assert set(asynchronous) == set(sync)
    for name, signature in asynchronous.items():
        if name in STREAMS:  # Iterator[Run] in one, AsyncIterator[Run] in the other
            assert signature.parameters == sync[name].parameters, name
            assert inspect.isasyncgenfunction(getattr(client.AsyncClient, name)), name
        elif name != "aclose":
            assert str(signature) == str(sync[name]), name
            assert inspect.iscoroutinefunction(getattr(client.AsyncClient, name)), name


async def test_async_client_retries_rate_limited_get_then_returns_run() -> None:
    replies = [_rate_limited("0"), _reply(200, {"success": True, "data": RUN_DETAIL})]
    seen: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies.pop(0)

    async with client.AsyncClient(
        "http://flowgate.test", "k", transport=httpx.MockTransport(answer)
    ) as sdk:
        run = await sdk.get_run("run_1")

    assert (run.id, run.steps[0].duration_ms) == ("run_1", 250)
    assert [r.url.path for r in seen] == ["/api/v1/runs/run_1"] * 2


async def test_async_client_connection_refused_raises_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    async with client.AsyncClient(
        "http://flowgate.test:1", "k", transport=httpx.MockTransport(refuse)
    ) as sdk:
        with pytest.raises(ApiError) as caught:
            await sdk.list_keys()

    assert caught.value.code == "CONNECTION_ERROR"


def test_client_module_all_names_exist_and_include_every_error_class() -> None:
    assert all(hasattr(client, name) for name in client.__all__)
    assert {cls.__name__ for _, cls, _ in DESIGN_CODES} <= set(client.__all__)
