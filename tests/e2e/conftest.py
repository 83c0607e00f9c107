"""The monitor in a real browser: Debian's Chromium driven by Playwright against a ``flowgate
serve`` process on loopback (its own SQLite database, the admin key from FLOWGATE_ADMIN_KEY).

One server and one browser serve the whole package; each test gets a fresh browser context (its
own cookies and storage) and makes its own workflows through the HTTP API, with ids of its own, so
tests do not depend on one another's data. Playwright's sync API is used: the tests are plain
functions, and no asyncio loop runs in the test thread while they do (pytest-asyncio only runs one
for ``async def`` tests).

Playwright's own browser download (``playwright install``) is never used: ``make chromium``
installs Debian's ``chromium``, which this launches by path.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.conftest import ADMIN_KEY
from tests.hostile import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
#: The machine is shared (2 cores, several test runs at once): waits are generous, never sleeps.
TIMEOUT_MS = 20_000
SESSION_COOKIE = "flowgate_session"

expect.set_options(timeout=TIMEOUT_MS)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="package")
def live_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("browser-server")
    database = directory / "flowgate.db"
    shutil.copyfile(sqlite_template, database)
    server = LiveServer(f"sqlite:///{database}", directory).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    """The HTTP API as the admin of the default project."""
    with live_server.client(timeout=30) as http:
        yield http


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def context(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    fresh = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    fresh.set_default_timeout(TIMEOUT_MS)
    try:
        yield fresh
    finally:
        fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def signed_in(page: Page) -> Page:
    """A page signed in to the monitor with the admin key, through the form."""
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/ui/overview$"))
    return page


def sign_in(page: Page, key: str = ADMIN_KEY) -> None:
    page.goto("/ui")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


# --- the API -------------------------------------------------------------------------------------


def create_workflow(http: httpx.Client, definition: dict[str, Any]) -> dict[str, Any]:
    created = http.post("/api/v1/workflows", json={"status": "active", **definition})
    assert created.status_code == 201, created.text
    workflow: dict[str, Any] = created.json()["data"]
    return workflow


def start_run(http: httpx.Client, workflow_id: str, run_input: dict[str, Any]) -> str:
    """A run started without waiting for it."""
    started = http.post(f"/api/v1/workflows/{workflow_id}/run", json={"input": run_input})
    assert started.status_code == 201, started.text
    run_id: str = started.json()["data"]["runId"]
    return run_id


def run_to_end(http: httpx.Client, workflow_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
    """A run started and waited for (``x-api-wait``) until it ends."""
    answer = http.post(
        f"/api/v1/workflows/{workflow_id}/run",
        json={"input": run_input},
        headers={"x-api-wait": "15"},
    )
    assert answer.status_code == 200, f"run not ended in time: {answer.text[:500]}"
    run: dict[str, Any] = answer.json()["data"]
    return run


def run_status(http: httpx.Client, run_id: str) -> str:
    found = http.get(f"/api/v1/runs/{run_id}")
    assert found.status_code == 200, found.text
    status: str = found.json()["data"]["status"]
    return status


def wait_for_status(http: httpx.Client, run_id: str, status: str, timeout: float = 20) -> None:
    """Polls the run until it has ``status`` (a condition, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last = run_status(http, run_id)
    while last != status:
        assert time.monotonic() < deadline, f"run {run_id} still {last!r}, not {status!r}"
        time.sleep(0.05)
        last = run_status(http, run_id)


def send_event(http: httpx.Client, key: str, payload: Any) -> None:
    sent = http.post(f"/v1/events/{key}/send", json={"payload": payload})
    assert sent.status_code == 200, sent.text


def approval_workflow(workflow_id: str) -> dict[str, Any]:
    """Waits at ``approval-{orderId}`` until an event is sent there, then completes with it."""
    return {
        "id": workflow_id,
        "name": f"Approve order {workflow_id}",
        "steps": [
            {
                "id": "approval",
                "type": "wait_for_event",
                "config": {
                    "eventKey": "approval-{{input.orderId}}",
                    "payload": {"question": "Ship order {{input.orderId}}?"},
                    "timeoutSecs": 3600,
                },
            },
            {
                "id": "decide",
                "type": "transform",
                "config": {"mapping": {"approved": "{{steps.approval.output.approved}}"}},
            },
        ],
    }
