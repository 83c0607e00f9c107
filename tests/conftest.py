"""Fixtures shared by every test: databases (SQLite and a real PostgreSQL), a real server."""

from __future__ import annotations

import asyncio
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import create_async_engine

from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store.migrate import upgrade_database
from tests.pg import PostgresCluster, start_cluster

hypothesis_settings.register_profile("flowgate", max_examples=50, deadline=None)
hypothesis_settings.load_profile("flowgate")

ADMIN_KEY = "fgk_test_admin_key_0123456789abcdef"


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _migrate(url: str) -> None:
    store = open_store(url)
    try:
        await upgrade_database(store)
    finally:
        await store.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    async def create() -> None:
        engine = create_async_engine(
            postgres.url.replace("postgresql://", "postgresql+asyncpg://"),
            isolation_level="AUTOCOMMIT",
        )
        async with engine.connect() as conn:
            await conn.execute(sa.text("CREATE DATABASE flowgate_template"))
        await _migrate(postgres.url_for("flowgate_template"))
        async with engine.connect() as conn:
            # No session (autovacuum included) may sit in the template while it is cloned.
            await conn.execute(
                sa.text("ALTER DATABASE flowgate_template WITH ALLOW_CONNECTIONS false")
            )
        await engine.dispose()

    _run(create())
    return "flowgate_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database for one test: a copied SQLite file or a PostgreSQL clone."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "flowgate.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url(postgres: PostgresCluster, postgres_template: str) -> str:
    """A fresh, migrated PostgreSQL database for one test (a clone of the template)."""
    name = f"t_{uuid.uuid4().hex[:16]}"

    async def clone() -> None:
        engine = create_async_engine(
            postgres.url.replace("postgresql://", "postgresql+asyncpg://"),
            isolation_level="AUTOCOMMIT",
        )
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE {postgres_template}'))
        await engine.dispose()

    _run(clone())
    return postgres.url_for(name)


class ThreadedServer:
    """uvicorn on 127.0.0.1, port 0, in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="uvicorn", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        original_startup = self.server.startup

        async def startup(sockets: Any = None) -> None:
            await original_startup(sockets)
            self.started.set()

        self.server.startup = startup  # type: ignore[method-assign]
        try:
            self.server.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.started.set()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        if not self.started.wait(30) or not self.server.started:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "admin_key": ADMIN_KEY,
            "workers": 2,
            "lease_secs": 5,
            "poll_interval_secs": 0.5,
            "max_wait_secs": 10,
            "data_dir": tmp_path / "data",
            "log_format": "json",
            "log_level": "warning",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Override in a test module to change the server's settings."""
    return make_settings()


@pytest.fixture
def server(server_settings: Settings) -> Iterator[ThreadedServer]:
    from flowgate.api.app import create_app

    with ThreadedServer(create_app(server_settings)) as running:
        yield running


@pytest.fixture
async def client(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
    ) as http:
        yield http


async def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail showing its last value.

    The default timeout is generous on purpose: a passing test returns as soon as the condition
    holds, and CI machines shared with other work stall for seconds at a time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
