"""schemathesis over the server's own ``/openapi.json``: no input yields a 5xx (DESIGN §3, §7).

One database (SQLite, STYLE §4) and a bounded, derandomized number of examples per operation keep
it inside the budget. Path parameters are either generated or the ids of seeded objects, so part
of the calls reach real workflows, runs, keys, projects and connections.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import simple_workflow

MAX_EXAMPLES = 30
AUTH = {"x-api-key": ADMIN_KEY}
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: schemathesis runs on one database (STYLE §4)."""
    path = tmp_path / "fuzz.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Short waits (``x-api-wait``, ``waitSecs``) and no rate limit to trip over."""
    return make_settings(max_wait_secs=1, execute_rate_limit=10**9, read_rate_limit=10**9)


def _seed(base_url: str) -> dict[str, str]:
    """One object of each kind; returns path-parameter values naming them."""
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http:
        workflow = http.post("/api/v1/workflows", json=simple_workflow("wf_fuzz"))
        run = http.post("/api/v1/workflows/wf_fuzz/run", json={"input": {"n": 1}})
        key = http.post("/api/v1/keys", json={"name": "fuzzed", "scopes": ["runs:read"]})
        project = http.post("/api/v1/projects", json={"name": "fuzzed"})
        connection = http.post(
            "/api/v1/connections",
            json={"name": "fuzzed", "type": "http", "config": {"baseUrl": "https://a.test"}},
        )
    created = (workflow, run, key, project, connection)
    assert [r.status_code for r in created] == [201] * 5, [r.text for r in created]
    return {
        "workflow_id": "wf_fuzz",
        "run_id": run.json()["data"]["runId"],
        "key_id": key.json()["data"]["id"],
        "project_id": project.json()["data"]["id"],
        "connection_id": connection.json()["data"]["id"],
    }


def _strategy(operation: Operation, seeded: dict[str, str]) -> Any:
    names = {p.name for p in operation.path_parameters}
    known = {name: value for name, value in seeded.items() if name in names}
    choices = [
        operation.as_strategy(generation_mode=mode)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    ]
    if known:
        choices.append(operation.as_strategy(path_parameters=known))
    return st.one_of(choices)


def _fuzz(operation: Operation, seeded: dict[str, str], base_url: str) -> int:
    """Runs the operation's examples; returns how many requests were sent."""
    sent = 0

    with requests.Session() as session:

        @FUZZ_SETTINGS
        @given(case=_strategy(operation, seeded))
        def fuzz(case: schemathesis.Case[Operation]) -> None:
            nonlocal sent
            response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=15)
            sent += 1
            case.validate_response(response, checks=[not_a_server_error])

        fuzz()
    return sent


def test_openapi_operations_any_input_never_answer_5xx(server: ThreadedServer) -> None:
    seeded = _seed(server.url)
    raw = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    failures: dict[str, str] = {}
    sent = 0

    for operation in operations:
        try:
            sent += _fuzz(operation, seeded, server.url)
        except (Exception, schemathesis.errors.FailureGroup) as exc:
            # Every operation is fuzzed; all of their failures are reported together.
            failures[operation.label] = f"{type(exc).__name__}: {exc}"

    assert failures == {}
    assert len(operations) >= 25, [op.label for op in operations]
    assert sent >= len(operations) * 5
