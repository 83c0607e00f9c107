"""schemathesis over /openapi.json against the real server: no input yields a 5xx (DESIGN §7).

One database (SQLite) keeps it inside the time budget; the example count is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import simple_workflow

SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="sqlite:///unused-schema-only.db")).openapi()
)


@pytest.fixture(scope="module")
def fuzz_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import shutil

    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    shutil.copyfile(sqlite_template, db)
    app_settings = Settings(
        database_url=f"sqlite:///{db}",
        admin_key=ADMIN_KEY,
        workers=1,
        max_wait_secs=1,
        data_dir=db.parent,
        log_level="error",
        log_format="json",
        execute_rate_limit=10**9,
        read_rate_limit=10**9,
    )
    with ThreadedServer(create_app(app_settings)) as running:
        seeded = httpx.post(
            f"{running.url}/api/v1/workflows",
            json=simple_workflow("wf_fuzz"),
            headers={"x-api-key": ADMIN_KEY},
        )
        assert seeded.status_code == 201
        yield running.url


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_answers_5xx(case: schemathesis.Case, fuzz_server: str) -> None:
    response = case.call(base_url=fuzz_server, headers={"x-api-key": ADMIN_KEY}, timeout=10)
    case.validate_response(response, checks=(not_a_server_error,))
