"""The servers under test: flowgate (``flowgate serve``) and the reference apps (uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import procs

FLOWGATE_WORKERS = 16
"""flowgate's default ``FLOWGATE_WORKERS``: the benchmarked server runs as shipped."""
UNFINISHED = ("queued", "pending", "running", "waiting")
UNSUCCESSFUL = ("failed", "canceled", "timed_out")
_RATE_LIMIT_OFF = "1000000000"
_POLL_SECS = 0.1
_PAGE = 200
_BATCH = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Flowgate:
    """A running flowgate server and an admin client for it."""

    base_url: str
    admin_key: str
    client: httpx.Client
    pid: int

    @property
    def auth(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    def create_workflow(self, definition: dict[str, Any]) -> None:
        response = self.client.post("/api/v1/workflows", json=definition)
        _expect(response, 201, "create workflow")

    def enqueue(self, workflow_id: str, count: int) -> None:
        """``count`` runs through the batch endpoint (a backlog, no per-run request)."""
        for start in range(0, count, _BATCH):
            runs = [{"input": {"n": n}} for n in range(start, min(start + _BATCH, count))]
            batch = self.client.post(
                f"/api/v1/workflows/{workflow_id}/run/batch", json={"runs": runs}
            )
            _expect(batch, 200, "enqueue a batch of runs")

    def create_webhook(self, workflow_id: str) -> tuple[str, str]:
        """A webhook trigger signed ``flowgate``-style: its URL and its signing secret."""
        response = self.client.post(
            f"/api/v1/workflows/{workflow_id}/triggers",
            json={"type": "webhook", "name": "bench", "signatureStyle": "flowgate"},
        )
        _expect(response, 201, "create a webhook trigger")
        data = response.json()["data"]
        return str(data["url"]), str(data["signingSecret"])

    def wait_idle(self, workflow_id: str, *, timeout: float) -> float | None:
        """Seconds until no run of ``workflow_id`` is unfinished; ``None`` past ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self._runs(workflow_id, UNFINISHED, limit=1)["data"]:
                return time.monotonic() - start
            time.sleep(_POLL_SECS)
        return None

    def wait_event(self, key: str, *, timeout: float) -> None:
        """Until the event trigger ``key`` waits (its run has parked)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            response = self.client.get(f"/v1/events/{key}")
            if response.status_code == 200 and response.json()["status"] == "waiting":
                return
            time.sleep(0.005)
        raise RuntimeError(f"no waiting trigger {key!r} after {timeout:.0f} s")

    def count_runs(self, workflow_id: str, statuses: Sequence[str], *, cap: int = 100_000) -> int:
        """Runs of ``workflow_id`` in ``statuses``, paging through the list (up to ``cap``)."""
        count, cursor = 0, None
        while count < cap:
            page = self._runs(workflow_id, statuses, limit=_PAGE, cursor=cursor)
            count += len(page["data"])
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or not cursor:
                break
        return count

    def _runs(
        self, workflow_id: str, statuses: Sequence[str], *, limit: int, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {"workflowId": workflow_id, "status": ",".join(statuses), "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        response = self.client.get("/api/v1/runs", params=params)
        _expect(response, 200, "list runs")
        page: dict[str, Any] = response.json()
        return page


@contextlib.contextmanager
def flowgate_server(
    workdir: Path,
    *,
    database_url: str | None = None,
    workers: int = FLOWGATE_WORKERS,
    admin_key: str | None = None,
    name: str = "flowgate",
) -> Iterator[Flowgate]:
    """``flowgate serve`` (on ``workdir/bench.db`` unless ``database_url``) on a free port, with
    ``admin_key`` (random unless given)."""
    port = procs.free_port()
    admin_key = admin_key or "fgk_" + secrets.token_urlsafe(24)
    env = flowgate_env(workdir, database_url=database_url, workers=workers, admin_key=admin_key)
    env["FLOWGATE_PORT"] = str(port)
    argv = [*flowgate_command(), "serve"]
    log_path = workdir / f"{name}.log"
    with (
        procs.server_process(name, argv, env=env, port=port, log_path=log_path) as (url, proc),
        httpx.Client(base_url=url, headers={"x-api-key": admin_key}, timeout=60.0) as client,
    ):
        yield Flowgate(base_url=url, admin_key=admin_key, client=client, pid=proc.pid)


def flowgate_env(
    workdir: Path, *, database_url: str | None, workers: int, admin_key: str
) -> dict[str, str]:
    """The environment of a benchmarked ``flowgate serve`` (no port)."""
    return _clean_env() | {
        "FLOWGATE_DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.db'}",
        "FLOWGATE_HOST": "127.0.0.1",
        "FLOWGATE_ADMIN_KEY": admin_key,
        "FLOWGATE_WORKERS": str(workers),
        "FLOWGATE_LOG_LEVEL": "warning",
        "FLOWGATE_LOG_FORMAT": "json",
        "FLOWGATE_DATA_DIR": str(workdir / "flowgate-data"),
        # The benchmark measures the server, not the per-key limiter's 429s.
        "FLOWGATE_EXECUTE_RATE_LIMIT": _RATE_LIMIT_OFF,
        "FLOWGATE_READ_RATE_LIMIT": _RATE_LIMIT_OFF,
    }


@contextlib.contextmanager
def reference_server(app: str, workdir: Path, **extra_env: str) -> Iterator[str]:
    """``app`` (``module:attribute``) under uvicorn, configured as flowgate configures it."""
    port = procs.free_port()
    argv = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "auto", "--http", "auto", "--lifespan", "on",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    name = app.rpartition(":")[2]
    env = _clean_env() | extra_env
    with procs.server_process(name, argv, env=env, port=port, log_path=workdir / f"{name}.log") as (
        url,
        _proc,
    ):
        yield url


@contextlib.contextmanager
def worker_processes(workdir: Path, database_url: str, *, count: int) -> Iterator[None]:
    """``count`` ``flowgate worker`` processes on ``database_url``, stopped on exit."""
    env = _clean_env() | {
        "FLOWGATE_DATABASE_URL": database_url,
        "FLOWGATE_WORKERS": str(FLOWGATE_WORKERS),
        "FLOWGATE_LOG_LEVEL": "warning",
    }
    started = []
    try:
        for index in range(count):
            log = (workdir / f"worker{index}.log").open("wb")
            started.append(
                subprocess.Popen(
                    [*flowgate_command(), "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield
    finally:
        for proc in started:
            procs.stop(proc)


def create_database(cluster: Any, name: str) -> str:
    """A new, empty database on a test cluster (``tests.pg.PostgresCluster``)."""

    async def create() -> None:
        conn = await asyncpg.connect(cluster.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return str(cluster.url_for(name))


def expect_ok(response: httpx.Response, what: str) -> None:
    _expect(response, 200, what)


def expect_created(response: httpx.Response, what: str) -> None:
    _expect(response, 201, what)


def flowgate_command() -> list[str]:
    script = Path(sys.executable).with_name("flowgate")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from flowgate.cli import main; main()"]


def _clean_env() -> dict[str, str]:
    """This environment minus ``FLOWGATE_*``: a developer's own settings must not leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{what}: expected {status}, got {response.status_code}: {response.text[:500]}"
        )
