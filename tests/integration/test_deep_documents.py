"""Documents at the edge of DESIGN §7's limits: deep JSON stored and rendered, NUL-free URLs, and
heavy YAML or schemas checked without stalling ``/healthz``.

The 1 s ``/healthz`` bound is DESIGN §7's own promise, so the tests polling it assert a duration on
purpose (STYLE §4 otherwise forbids timing asserts).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.hostile import LiveServer
from tests.integration.conftest import create_workflow, simple_workflow

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HEALTHZ_LIMIT_SECS = 1.0  # DESIGN §7
HEAVY_REQUEST_TIMEOUT_SECS = 60
NUL_REFUSED = {
    "success": False,
    "error": {
        "code": "INVALID_REQUEST",
        "message": "The URL path must not contain NUL (%00) characters",
    },
}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_start_run_input_400_deep_completes_and_renders(client: httpx.AsyncClient) -> None:
    await create_workflow(client, simple_workflow("wf_deep"))
    deep = _nested(400)

    started = await client.post(
        "/api/v1/workflows/wf_deep/run", json={"input": deep}, headers={"x-api-wait": "10"}
    )
    assert started.status_code == 200, started.text[:500]
    run = started.json()["data"]
    fetched = await client.get(f"/api/v1/runs/{run['id']}")

    assert (run["status"], run["input"] == deep) == ("completed", True)
    assert fetched.status_code == 200, fetched.text[:500]
    assert fetched.json()["data"]["input"] == deep


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/runs/%00"),
        ("GET", "/api/v1/workflows/%00"),
        ("GET", "/api/v1/workflows/wf_a%00b/versions"),
        ("POST", "/api/v1/workflows/%00/run"),
        ("POST", "/api/v1/runs/run_%00/cancel"),
        ("GET", "/api/v1/connections/%00"),
        ("GET", "/ui/runs/%00"),
    ],
)
async def test_request_path_with_nul_is_400_invalid_request(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert (response.status_code, response.json()) == (400, NUL_REFUSED)


@pytest.mark.parametrize(
    "path", ["/api/v1/workflows?cursor=%00", "/api/v1/runs/run_x?waitSecs=1%00", "/healthz?a=%00"]
)
async def test_request_query_with_nul_is_400_naming_the_parameter(
    client: httpx.AsyncClient, path: str
) -> None:
    name = path.split("?")[1].split("=")[0]

    response = await client.get(path)

    assert (response.status_code, response.json()) == (
        400,
        {
            "success": False,
            "error": {
                "code": "INVALID_REQUEST",
                "message": f"{name} must not contain NUL characters",
                "details": [{"path": [name], "message": "must not contain NUL characters"}],
            },
        },
    )


_POLLER = """
import sys, threading, time
import httpx

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
worst, polls = 0.0, 0
with httpx.Client(base_url=sys.argv[1], timeout=30) as http:
    while not stop.is_set():
        started = time.perf_counter()
        status = http.get("/healthz").status_code
        worst, polls = max(worst, time.perf_counter() - started), polls + 1
        if status != 200:
            worst = float("inf")
        if polls == 1:
            print("polling", flush=True)
        stop.wait(0.02)  # pacing between polls
print(worst, polls, flush=True)
"""


@dataclass
class _Healthz:
    worst: float = 0.0
    polls: int = 0


@contextmanager
def _polling_healthz(url: str) -> Iterator[_Healthz]:
    """Polls ``/healthz`` from another process: a thread of this one would wait for the GIL too
    when the server's thread holds it (a native call), and so could not see that stall."""
    found = _Healthz()
    poller = subprocess.Popen(
        [sys.executable, "-c", _POLLER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller.stdout is not None
    try:
        assert poller.stdout.readline() == "polling\n"  # its first poll has been answered
        yield found
    finally:
        out, _ = poller.communicate("", timeout=60)  # closing its stdin stops it
    worst, polls = out.split()
    found.worst, found.polls = float(worst), int(polls)


def _heavy_yaml() -> bytes:
    """About 99,990 nodes (the limit is 100,000), as one flow sequence: the costliest YAML per
    node we measured (~60-80 µs each in ruamel's pure-Python parser)."""
    head = [
        "id: wf_heavy",
        "name: heavy",
        "status: draft",
        "steps:",
        "  - id: only",
        "    type: transform",
        "    config:",
        "      mapping:",
    ]
    items = "        items: [" + ", ".join(["1"] * 99_970) + "]"
    return ("\n".join([*head, items]) + "\n").encode()


def _heavy_schema_workflow() -> dict[str, Any]:
    """64 distinct regexes (the cap), each a Unicode class repeated ~200 times: ~50 ms each to
    compile with the regex crate's default 10 MiB size limit, the GIL held throughout."""
    patterns = {
        f"p{i}": {
            "type": "string",
            "pattern": r"^[\p{L}\p{N}]{COUNT}$".replace("COUNT", str(150 + i)),
        }
        for i in range(64)
    }
    return simple_workflow(
        "wf_heavy_schema", status="draft", inputSchema={"type": "object", "properties": patterns}
    )


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_body_bytes=2 * 1024 * 1024)


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """``flowgate serve`` in its own process, as users run it: /healthz is measured on a
    server whose heap holds only this test's work, not a long test session's (whose garbage
    collections would stall any thread of it)."""
    server = LiveServer(database_url, tmp_path, FLOWGATE_MAX_BODY_BYTES=str(2 * 1024 * 1024))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@SQLITE_ONLY
def test_create_workflow_heaviest_yaml_keeps_healthz_under_1s(live_server: LiveServer) -> None:
    body = _heavy_yaml()
    with (
        httpx.Client(base_url=live_server.url, headers={"x-api-key": ADMIN_KEY}) as http,
        _polling_healthz(live_server.url) as poller,
    ):
        response = http.post(
            "/api/v1/workflows",
            content=body,
            headers={"content-type": "application/yaml"},
            timeout=HEAVY_REQUEST_TIMEOUT_SECS,
        )

    assert response.status_code == 201, response.text[:500]
    assert len(response.json()["data"]["steps"][0]["config"]["mapping"]["items"]) == 99_970
    assert poller.polls > 1
    assert poller.worst < HEALTHZ_LIMIT_SECS


@SQLITE_ONLY
def test_create_workflow_64_heavy_unicode_patterns_keeps_healthz_under_1s(
    server: ThreadedServer,
) -> None:
    with (
        httpx.Client(base_url=server.url, headers={"x-api-key": ADMIN_KEY}) as http,
        _polling_healthz(server.url) as poller,
    ):
        response = http.post(
            "/api/v1/workflows",
            json=_heavy_schema_workflow(),
            timeout=HEAVY_REQUEST_TIMEOUT_SECS,
        )

    assert poller.worst < HEALTHZ_LIMIT_SECS
    assert response.status_code == 400, response.text[:500]
    assert response.json()["error"]["details"] == [
        {
            "path": ["inputSchema", "properties", "p0", "pattern"],
            "message": "'^[\\\\p{L}\\\\p{N}]{150}$' compiles to more than 512 KiB; use + or * "
            "with minLength/maxLength instead of large repetition counts",
        }
    ]
