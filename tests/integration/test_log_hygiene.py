"""Logs never carry secrets (DESIGN §7, STYLE §3): with debug JSON logs captured, API keys,
webhook signing secrets and tokens, connection credentials and run env values appear in no
record, neither in its message nor in any field."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.logs import configure_logging
from flowgate.settings import Settings
from tests import targets
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow

SIGNING_SECRET = "sigsecret-Q7f2LmZr9x"
CREDENTIAL = "credential-Hx83kPq0vW"
ENV_SECRET = "envsecret-Zt5bNw4yYc"
SECRET_KEY = "vault-secret-key-Jm2rT8sd"


class Capture(logging.Handler):
    """Keeps every record and its rendering by the root handler's (JSON) formatter."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.rendering = formatter
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.rendering is not None:
            self.lines.append(self.rendering.format(record))

    def texts(self) -> list[str]:
        """Every rendered line, and every message and attribute of every record."""
        raw = [f"{record.getMessage()} {record.__dict__!r}" for record in self.records]
        return self.lines + raw


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    noisy = ("uvicorn.access", "alembic.runtime.migration", "httpx", "httpcore")
    saved_noisy = {name: logging.getLogger(name).level for name in noisy}
    configure_logging("debug", "json")
    capture = Capture(root.handlers[0].formatter)
    for log_filter in root.handlers[0].filters:
        capture.addFilter(log_filter)
    root.handlers[0].setStream(io.StringIO())  # type: ignore[attr-defined]
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_noisy.items():
            logging.getLogger(name).setLevel(level)


def _workflows() -> list[dict[str, Any]]:
    return [
        {
            "id": "wf_call",
            "name": "call",
            "status": "active",
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "http.request",
                    "connectionId": "conn_target",
                    "config": {"method": "POST", "url": "/record", "body": {"n": 1}},
                }
            ],
        },
        {
            "id": "wf_env",
            "name": "env",
            "status": "active",
            "steps": [
                {
                    "id": "fetch",
                    "type": "http",
                    "continueOnError": True,
                    "config": {"url": "http://127.0.0.1:1/x?token={{env.TOKEN}}"},
                },
                {"id": "boom", "type": "fail", "config": {"message": "bad {{env.TOKEN}}"}},
            ],
        },
    ]


async def test_logs_at_debug_never_carry_keys_hook_secrets_credentials_or_env_values(
    make_settings: Callable[..., Settings], captured: Capture
) -> None:
    settings = make_settings(log_level="debug", secret_key=SECRET_KEY, http_allow_private=True)
    targets.SEEN.clear()
    with (
        ThreadedServer(targets.app) as target,
        ThreadedServer(create_app(settings)) as running,
    ):
        async with httpx.AsyncClient(
            base_url=running.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            secrets = await _exercise(http, target.url)

    assert targets.SEEN, "the connection's call reached the target"
    assert targets.SEEN[-1]["headers"].get("x-secret") == [CREDENTIAL]
    events = {getattr(record, "event", record.getMessage()) for record in captured.records}
    assert {"run.finished"} <= events, sorted(events)[:40]
    finished = [r for r in captured.records if r.getMessage() == "run.finished"]
    assert {getattr(r, "workflow_id", None) for r in finished} >= {"wf_call", "wf_env"}
    assert all(str(getattr(r, "run_id", "")).startswith("run_") for r in finished)
    rendered = [line for line in captured.lines if '"run.finished"' in line]
    assert rendered
    assert all('"workflow_id"' in line for line in rendered), rendered[:1]
    texts = captured.texts()
    for name, secret in secrets.items():
        leaking = [text for text in texts if secret in text]
        assert leaking == [], f"{name} leaked into {len(leaking)} log records: {leaking[:2]}"


async def _exercise(http: httpx.AsyncClient, target: str) -> dict[str, str]:
    key = await http.post("/api/v1/keys", json={"name": "ci", "scopes": ["admin"]})
    assert key.status_code == 201, key.text
    api_key = key.json()["data"]["key"]
    as_new_key = await http.get("/api/v1/workflows", headers={"x-api-key": api_key})
    assert as_new_key.status_code == 200, as_new_key.text
    wrong_key = await http.get("/api/v1/workflows", headers={"x-api-key": api_key + "x"})
    assert wrong_key.status_code == 401

    connection = await http.post(
        "/api/v1/connections",
        json={
            "id": "conn_target",
            "name": "target",
            "type": "http",
            "config": {"baseUrl": target},
            "credentials": {"headers": {"x-secret": CREDENTIAL}},
        },
    )
    assert connection.status_code == 201, connection.text
    for definition in _workflows():
        await create_workflow(http, definition)

    trigger = await http.post(
        "/api/v1/workflows/wf_call/triggers",
        json={"type": "webhook", "signingSecret": SIGNING_SECRET},
    )
    assert trigger.status_code == 201, trigger.text
    hook_path = "/hooks/" + trigger.json()["data"]["url"].rsplit("/", 1)[1]
    body = b'{"a": 1}'
    signature = "sha256=" + hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
    signed = await http.post(
        hook_path,
        content=body,
        headers={"x-flowgate-signature": signature, "content-type": "application/json"},
    )
    assert signed.status_code == 202, signed.text
    unsigned = await http.post(hook_path, content=body)
    assert unsigned.status_code == 401
    hook_run = signed.json()["data"]["runId"]

    async def hook_run_done() -> str:
        status = (await http.get(f"/api/v1/runs/{hook_run}")).json()["data"]["status"]
        return str(status) if status in ("completed", "failed") else ""

    assert await wait_until(hook_run_done) == "completed"

    env_run = await http.post(
        "/api/v1/workflows/wf_env/run",
        json={"input": {}, "env": {"TOKEN": ENV_SECRET}},
        headers={"x-api-wait": "true"},
    )
    assert env_run.status_code == 200, env_run.text
    assert env_run.json()["data"]["status"] == "failed"
    assert env_run.json()["data"]["error"]["message"] == "bad ***"
    return {
        "api key": api_key,
        "admin key": ADMIN_KEY,
        "signing secret": SIGNING_SECRET,
        "hook token": hook_path.rsplit("/", 1)[1],
        "signature": signature.removeprefix("sha256="),
        "connection credential": CREDENTIAL,
        "env value": ENV_SECRET,
        "secret key": SECRET_KEY,
    }
