"""Hostile inputs against a live ``flowgate serve`` process (DESIGN §7 "Limits and rules pinned
down"): for each case the answer, the time it took, the worst ``/healthz`` latency while it was
handled (< 1 s) and the growth of the server's RSS.

RSS bounds: where the request is small (a few kB) "a few times its own size" is below the noise of
a Python process, so a generous fixed 200 MB is used; the 10 MB body gets 4 x its size; the 50 MB
response gets 48 MB, less than the body, so reading it whole fails. The figures of every case are
printed in a table when the module ends (and written to ``hostile_figures.json`` in pytest's
base temp directory).

The 1 s ``/healthz`` bound, the alias bomb's 1 s and the http timeout's slack are DESIGN §7's own
limits, so these are timing asserts on purpose (STYLE §4 otherwise forbids them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import hostile
from tests.conftest import ThreadedServer
from tests.hostile import Case, LiveServer
from tests.integration.conftest import simple_workflow

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SMALL_RSS_BOUND_MB = 200
#: Longest a hostile request is waited for; a run is awaited with ``x-api-wait: RUN_WAIT``.
HOSTILE_TIMEOUT_SECS = 12
RUN_WAIT = "8"
MAX_OUTPUT_BYTES = 1_048_576  # FLOWGATE_MAX_OUTPUT_BYTES default
HTTP_TIMEOUT_SECS = float(hostile.SERVER_ENV["FLOWGATE_HTTP_TIMEOUT_SECS"])
TOO_DEEP = {"code": "INVALID_REQUEST", "message": "Document too large or too deep"}
OVERFLOW_CURSOR = (
    "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk6eA"
)
HUGE = "1" + "0" * 30  # beyond 64 bits
YAML = {"content-type": "application/yaml"}
JSON_TYPE = {"content-type": "application/json"}


@pytest.fixture(scope="module", autouse=True)
def figures_table(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    hostile.FIGURES.clear()
    yield
    path = tmp_path_factory.getbasetemp() / "hostile_figures.json"
    path.write_text(json.dumps([asdict(row) for row in hostile.FIGURES], indent=1))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stdout.write(f"\n\n{hostile.figures_table(hostile.FIGURES)}\n(also in {path})\n")


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A warmed-up ``flowgate serve``: one run has completed, so lazy imports are done."""
    server = LiveServer(database_url, tmp_path).start()
    try:
        with server.client() as http:
            assert (
                http.post("/api/v1/workflows", json=simple_workflow("wf_warm")).status_code == 201
            )
            warm = http.post(
                "/api/v1/workflows/wf_warm/run",
                json={"input": {"n": 1}},
                headers={"x-api-wait": "10"},
            )
            assert warm.status_code == 200, warm.text
            assert warm.json()["data"]["status"] == "completed"
            server.warm_run_id = warm.json()["data"]["id"]
        yield server
    finally:
        server.stop()


@pytest.fixture
def target() -> Iterator[str]:
    with ThreadedServer(hostile.target_app) as running:
        yield running.url


def _label(live: LiveServer, text: str) -> str:
    return f"{text} [{live.database}]"


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    return error


def _code_and_message(error: dict[str, Any]) -> dict[str, Any]:
    return {"code": error["code"], "message": error["message"]}


def _create_active(http: httpx.Client, definition: dict[str, Any]) -> None:
    created = http.post("/api/v1/workflows", json={**definition, "status": "draft"})
    assert created.status_code == 201, created.text
    activated = http.post(f"/api/v1/workflows/{definition['id']}/activate")
    assert activated.status_code == 200, activated.text


def _start_and_wait(
    http: httpx.Client, workflow_id: str, run_input: dict[str, Any]
) -> httpx.Response:
    return http.post(
        f"/api/v1/workflows/{workflow_id}/run",
        json={"input": run_input},
        headers={"x-api-wait": RUN_WAIT},
        timeout=HOSTILE_TIMEOUT_SECS,
    )


def _finished_run(case: Case) -> dict[str, Any]:
    response = case.answer()
    assert response.status_code == 200, (
        f"run not finished within {RUN_WAIT} s: {response.status_code} {response.text[:300]}"
    )
    run: dict[str, Any] = response.json()["data"]
    return run


def _http_workflow(workflow_id: str, url: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "steps": [{"id": "call", "type": "http", "config": {"url": url}}],
    }


# 1. YAML alias bomb ---------------------------------------------------------------------------


def _alias_bomb(levels: int) -> bytes:
    lines = [
        "id: wf_bomb",
        "name: bomb",
        "status: draft",
        "steps:",
        "  - id: only",
        "    type: transform",
        "    config:",
        "      mapping:",
        "        l1: &l1 [" + ", ".join(["x"] * 10) + "]",
    ]
    for level in range(2, levels + 1):
        lines.append(f"        l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


@SQLITE_ONLY
@pytest.mark.parametrize("levels", [8, 7])
def test_yaml_alias_bomb_is_400_too_deep_in_under_a_second(live: LiveServer, levels: int) -> None:
    document = _alias_bomb(levels)
    name = _label(live, f"1 YAML alias bomb {levels}x10 ({len(document)} B)")
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, name, SMALL_RSS_BOUND_MB).run(
            lambda: http.post("/api/v1/workflows", content=document, headers=YAML)
        )

        assert _code_and_message(_error(case.answer(), 400)) == TOO_DEEP
        assert case.seconds < 1.0, f"refused after {case.seconds:.2f} s (DESIGN: milliseconds)"
        case.assert_unharmed()
        assert http.get("/api/v1/workflows/wf_bomb").status_code == 404


# 2. Deep nesting ------------------------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize(("kind", "headers"), [("YAML", YAML), ("JSON", JSON_TYPE)])
def test_document_nested_20000_deep_is_400_too_deep(
    live: LiveServer, kind: str, headers: dict[str, str]
) -> None:
    document = b"[" * 20_000 + b"]" * 20_000
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, f"2 {kind} nested 20,000 deep"), SMALL_RSS_BOUND_MB).run(
            lambda: http.post("/api/v1/workflows", content=document, headers=headers)
        )

        assert _code_and_message(_error(case.answer(), 400)) == TOO_DEEP
        case.assert_unharmed()


@SQLITE_ONLY
def test_json_workflow_nested_600_deep_is_400_too_deep(live: LiveServer) -> None:
    deep = "[" * 600 + "1" + "]" * 600
    document = (
        '{"id": "wf_deep", "name": "deep", "status": "draft", "steps": [{"id": "only", '
        '"type": "transform", "config": {"mapping": {"deep": ' + deep + "}}}]}"
    ).encode()
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, "2 JSON workflow nested 600 deep"), SMALL_RSS_BOUND_MB).run(
            lambda: http.post("/api/v1/workflows", content=document, headers=JSON_TYPE)
        )

        assert _code_and_message(_error(case.answer(), 400)) == TOO_DEEP
        case.assert_unharmed()
        assert http.get("/api/v1/workflows/wf_deep").status_code == 404


# 3. Exponential regex in inputSchema ----------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize("length", [35, 10_000])
def test_run_input_against_exponential_pattern_is_400_without_stalling(
    live: LiveServer, length: int
) -> None:
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
    }
    with live.client() as http:
        _create_active(http, {**simple_workflow("wf_redos"), "inputSchema": schema})
        value = "a" * length + "!"
        name = _label(live, f"3 pattern ^(a+)+$ vs {length} a + '!'")
        case = Case(live, name, SMALL_RSS_BOUND_MB).run(
            lambda: http.post(
                "/api/v1/workflows/wf_redos/run",
                json={"input": {"s": value}},
                timeout=HOSTILE_TIMEOUT_SECS,
            )
        )

        error = _error(case.answer(), 400)
        assert _code_and_message(error) == {
            "code": "VALIDATION_ERROR",
            "message": "Input validation failed",
        }
        assert [detail["path"] for detail in error["details"]] == [["s"]]
        case.assert_unharmed()


# 4. Step output over FLOWGATE_MAX_OUTPUT_BYTES ------------------------------------------------


def test_transform_output_over_1_mib_fails_output_too_large_and_stores_nothing_larger(
    live: LiveServer,
) -> None:
    mapping = {f"k{i:02d}": "{{input.s}}" for i in range(64)}  # 64 x 20 kB = 1.25 MiB
    definition = {
        "id": "wf_blow_up",
        "name": "blow up",
        "steps": [{"id": "blow-up", "type": "transform", "config": {"mapping": mapping}}],
    }
    with live.client() as http:
        _create_active(http, definition)
        name = _label(live, "4 transform output 64 x 20 kB = 1.25 MiB")
        case = Case(live, name, SMALL_RSS_BOUND_MB).run(
            lambda: _start_and_wait(http, "wf_blow_up", {"s": "x" * 20_000})
        )

        run = _finished_run(case)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "OUTPUT_TOO_LARGE", run["error"]
        assert run["error"]["stepId"] == "blow-up"
        stored = http.get(f"/api/v1/runs/{run['id']}")
        assert stored.status_code == 200
        assert len(stored.content) < MAX_OUTPUT_BYTES, f"GET run is {len(stored.content)} bytes"
        assert [s["status"] for s in stored.json()["data"]["steps"]] == ["failed"]
        case.assert_unharmed()


# 5. Template loop -----------------------------------------------------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("what", "template"),
    [
        ("loop 1..100,000,000", "{% for i in (1..100000000) %}x{% endfor %}"),
        ("lone range 1..100,000,000", "{{ (1..100000000) }}"),
        ("join of 1..100,000,000", "{{ (1..100000000) | join: ',' }}"),
    ],
    ids=["loop", "lone-range", "join"],
)
def test_template_over_100m_items_fails_template_error_without_stalling(
    live: LiveServer, what: str, template: str
) -> None:
    definition = {
        "id": "wf_loop",
        "name": "loop",
        "steps": [{"id": "loop", "type": "transform", "config": {"mapping": {"x": template}}}],
    }
    with live.client() as http:
        _create_active(http, definition)
        case = Case(live, _label(live, f"5 template {what}"), SMALL_RSS_BOUND_MB).run(
            lambda: _start_and_wait(http, "wf_loop", {})
        )

        run = _finished_run(case)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "TEMPLATE_ERROR", run["error"]
        assert run["error"]["stepId"] == "loop"
        case.assert_unharmed()


# 6. and 7. Outbound http: a trickling server, a huge body -------------------------------------


def _warm_http(http: httpx.Client, target: str) -> None:
    _create_active(http, _http_workflow("wf_http_warm", f"{target}/ok"))
    warm = _start_and_wait(http, "wf_http_warm", {})
    assert warm.status_code == 200, warm.text
    assert warm.json()["data"]["status"] == "completed", warm.text


@SQLITE_ONLY
def test_http_step_against_trickling_server_fails_within_http_timeout(
    target: str, live: LiveServer
) -> None:
    with live.client() as http:
        _warm_http(http, target)
        _create_active(http, _http_workflow("wf_trickle", f"{target}/trickle"))
        name = _label(live, f"6 http step vs 1 byte/s (timeout {HTTP_TIMEOUT_SECS:g} s)")
        case = Case(live, name, SMALL_RSS_BOUND_MB).run(
            lambda: _start_and_wait(http, "wf_trickle", {})
        )

        run = _finished_run(case)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "STEP_FAILED", run["error"]
        assert run["error"]["stepId"] == "call"
        step = run["steps"][0]
        assert step["status"] == "failed"
        # FLOWGATE_HTTP_TIMEOUT_SECS bounds the whole call; 1.5 s of slack for scheduling.
        assert step["durationMs"] < (HTTP_TIMEOUT_SECS + 1.5) * 1000, step
        case.assert_unharmed()


@SQLITE_ONLY
def test_http_step_against_50_mb_body_fails_without_buffering_it(
    target: str, live: LiveServer
) -> None:
    with live.client() as http:
        _warm_http(http, target)
        _create_active(http, _http_workflow("wf_huge_body", f"{target}/big?mb=50"))
        # Bound below the body's size: reading it whole would exceed it.
        case = Case(live, _label(live, "7 http step vs 50 MB chunked body"), 48).run(
            lambda: _start_and_wait(http, "wf_huge_body", {})
        )

        run = _finished_run(case)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "STEP_FAILED", run["error"]
        assert run["error"]["stepId"] == "call"
        stored = http.get(f"/api/v1/runs/{run['id']}")
        assert len(stored.content) < MAX_OUTPUT_BYTES, f"GET run is {len(stored.content)} bytes"
        case.assert_unharmed()


# 8. Numbers and cursors that do not fit -------------------------------------------------------


def _overflowing(http: httpx.Client, what: str, run_id: str) -> httpx.Response:
    if what == "cursor":
        return http.get("/api/v1/runs", params={"cursor": OVERFLOW_CURSOR})
    if what == "limit":
        return http.get("/api/v1/runs", params={"limit": HUGE})
    if what == "priority 10^30":
        body = b'{"priority": ' + HUGE.encode() + b"}"
        return http.post("/api/v1/workflows/wf_warm/run", content=body, headers=JSON_TYPE)
    assert what == "priority 10^15"  # fits 64 bits, outside -100..100
    return http.post("/api/v1/workflows/wf_warm/run", json={"priority": 10**15})


@pytest.mark.parametrize(
    "what",
    ["cursor", "limit", "priority 10^30", "priority 10^15"],
)
def test_number_or_cursor_that_does_not_fit_is_400_not_500(live: LiveServer, what: str) -> None:
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, f"8 overflowing {what}"), SMALL_RSS_BOUND_MB).run(
            lambda: _overflowing(http, what, live.warm_run_id)
        )

        assert _error(case.answer(), 400)["code"] == "INVALID_REQUEST"
        case.assert_unharmed()


@pytest.mark.parametrize("wait", [HUGE, "1e999"], ids=["10^30", "1e999"])
def test_wait_secs_beyond_any_bound_is_capped_not_500(live: LiveServer, wait: str) -> None:
    """A long-poll longer than FLOWGATE_MAX_WAIT_SECS waits that long at most (DESIGN §3 caps
    waits); the warm-up run has ended, so the answer is at once."""
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, f"8 waitSecs {wait[:8]}"), SMALL_RSS_BOUND_MB).run(
            lambda: http.get(f"/api/v1/runs/{live.warm_run_id}", params={"waitSecs": wait})
        )

        assert case.answer().status_code == 200
        assert case.answer().json()["data"]["status"] == "completed"
        case.assert_unharmed()


# 9. Ids with a trailing newline ---------------------------------------------------------------


@SQLITE_ONLY
def test_workflow_id_with_trailing_newline_is_400(live: LiveServer) -> None:
    definition = {**simple_workflow("wf_x", status="draft"), "id": "wf_x\n"}
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, "9 workflow id 'wf_x\\n'"), SMALL_RSS_BOUND_MB).run(
            lambda: http.post("/api/v1/workflows", json=definition)
        )

        assert _error(case.answer(), 400)["code"] == "INVALID_REQUEST"
        case.assert_unharmed()
        assert http.get("/api/v1/workflows/wf_x").status_code == 404
        listed = http.get("/api/v1/workflows").json()["data"]
        assert [w["id"] for w in listed] == ["wf_warm"]


@SQLITE_ONLY
def test_connection_id_with_trailing_newline_is_400(live: LiveServer) -> None:
    connection = {
        "id": "conn_x\n",
        "name": "x",
        "type": "http",
        "config": {"baseUrl": "https://a.test"},
    }
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, _label(live, "9 connection id 'conn_x\\n'"), SMALL_RSS_BOUND_MB).run(
            lambda: http.post("/api/v1/connections", json=connection)
        )

        assert _error(case.answer(), 400)["code"] == "INVALID_REQUEST"
        case.assert_unharmed()
        assert http.get("/api/v1/connections/conn_x").status_code == 404
        assert http.get("/api/v1/connections").json()["data"] == []


# 10. A 10 MB body -----------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def _ten_mb_body() -> bytes:
    return b'{"input": {"s": "' + b"x" * TEN_MB + b'"}}'


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


@SQLITE_ONLY
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_run_with_10_mb_body_is_413(live: LiveServer, framing: str) -> None:
    body = _ten_mb_body()
    content: bytes | Iterator[bytes] = body if framing == "content-length" else _chunks(body)
    name = _label(live, f"10 POST run, 10 MB body, {framing}")
    with live.client(timeout=HOSTILE_TIMEOUT_SECS) as http:
        case = Case(live, name, 4 * TEN_MB / 1024**2).run(
            lambda: http.post("/api/v1/workflows/wf_warm/run", content=content, headers=JSON_TYPE)
        )

        assert _error(case.answer(), 413)["code"] == "PAYLOAD_TOO_LARGE"
        case.assert_unharmed()
        runs = http.get("/api/v1/runs", params={"workflowId": "wf_warm"}).json()["data"]
        assert [r["id"] for r in runs] == [live.warm_run_id]


# 11. Ids per project --------------------------------------------------------------------------

SCOPES = ["workflows:read", "workflows:write", "workflows:execute", "runs:read"]


def test_workflow_ids_are_per_project_and_invisible_across_projects(live: LiveServer) -> None:
    with live.client() as admin:
        project = admin.post("/api/v1/projects", json={"name": "B"})
        assert project.status_code == 201, project.text
        project_b = project.json()["data"]["id"]
        key_b = admin.post(
            "/api/v1/keys", json={"name": "b", "scopes": SCOPES, "projectId": project_b}
        )
        key_a = admin.post("/api/v1/keys", json={"name": "a", "scopes": SCOPES})
        assert key_a.status_code == key_b.status_code == 201, (key_a.text, key_b.text)
    report_a = {**simple_workflow("wf_daily_report"), "name": "A report"}
    report_b = {**simple_workflow("wf_daily_report"), "name": "B report"}
    with (
        live.client(key_a.json()["data"]["key"]) as a,
        live.client(key_b.json()["data"]["key"]) as b,
    ):
        assert a.post("/api/v1/workflows", json=report_a).status_code == 201
        assert a.post("/api/v1/workflows", json=simple_workflow("wf_only_a")).status_code == 201
        name = _label(live, "11 project B creates A's wf_daily_report")
        case = Case(live, name, SMALL_RSS_BOUND_MB).run(
            lambda: b.post("/api/v1/workflows", json=report_b)
        )

        created = case.answer()
        assert created.status_code == 201, created.text
        assert created.json()["data"]["name"] == "B report"
        case.assert_unharmed()
        assert a.get("/api/v1/workflows/wf_daily_report").json()["data"]["name"] == "A report"
        assert b.get("/api/v1/workflows/wf_daily_report").json()["data"]["name"] == "B report"
        listed_a = a.get("/api/v1/workflows").json()["data"]
        listed_b = b.get("/api/v1/workflows").json()["data"]
        assert sorted((w["id"], w["name"]) for w in listed_a) == [
            ("wf_daily_report", "A report"),
            ("wf_only_a", "only a"),
            ("wf_warm", "warm"),
        ]
        assert [(w["id"], w["name"]) for w in listed_b] == [("wf_daily_report", "B report")]
        foreign = b.get("/api/v1/workflows/wf_only_a")
        assert _code_and_message(_error(foreign, 404)) == {
            "code": "NOT_FOUND",
            "message": "Workflow not found",
        }
        run_b = _start_and_wait(b, "wf_daily_report", {"n": 2})
        assert run_b.status_code == 200, run_b.text
        assert run_b.json()["data"]["status"] == "completed"
        assert a.get(f"/api/v1/runs/{run_b.json()['data']['id']}").status_code == 404
