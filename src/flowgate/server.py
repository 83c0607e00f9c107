"""Process entry points behind ``flowgate serve``, ``worker`` and ``db upgrade``."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import uvicorn

from flowgate.logs import configure_logging
from flowgate.settings import Settings

if TYPE_CHECKING:
    from flowgate.service.core import Services

log = logging.getLogger(__name__)


def _uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_config=None,
        access_log=False,
        lifespan="on",
    )


async def serve(
    settings: Settings, *, examples: Path | None = None, show_key: bool = False
) -> None:
    """Serve HTTP with in-process workers until SIGINT/SIGTERM; raises SecretKeyError first
    when the secret key is empty or unreadable."""
    from flowgate.api.app import create_app
    from flowgate.service.examples import after_start

    configure_logging(settings.log_level, settings.log_format)
    services = _build_services(settings)
    services.vault.check()  # an empty or unreadable secret key stops start-up (SecretKeyError)
    app = create_app(settings, services=services)
    server = _Server(_uvicorn_config(app, settings))
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    started = asyncio.create_task(server.started_event.wait(), name="uvicorn-started")
    await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
    if server.started:
        await after_start(services, examples=examples, show_key=show_key)
    started.cancel()
    await serving


def _build_services(settings: Settings) -> Services:
    """The process's services; a python function module that cannot be loaded (or a name two
    modules define) ends the process with one line on stderr and exit code 2: the line names
    the file and the error, and a traceback would bury it."""
    from flowgate.engine.functions import FunctionLoadError
    from flowgate.service.core import build_services

    try:
        return build_services(settings)
    except FunctionLoadError as exc:
        sys.stderr.write(f"flowgate: cannot load python functions: {exc}\n")
        raise SystemExit(2) from None


class _Server(uvicorn.Server):
    """uvicorn's server, telling when it listens (to print the banner after, not before)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()


async def run_worker(settings: Settings) -> None:
    """Workers only, until SIGINT/SIGTERM; raises SecretKeyError like :func:`serve`."""
    from flowgate.service.core import running

    configure_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    services = _build_services(settings)
    async with running(services, workers=max(settings.workers, 1)):
        await stop.wait()


async def copy_database(settings: Settings, to_url: str) -> list[str]:
    """Copy the configured (stopped) store into ``to_url``; returns report lines, raises on a
    count mismatch or a non-empty target."""
    from flowgate.store import open_store
    from flowgate.store.copy import copy_store
    from flowgate.store.migrate import upgrade_database
    from flowgate.store.sql import SqlStore

    synchronous = settings.sqlite_synchronous
    source = open_store(settings.database_url, sqlite_synchronous=synchronous)
    target = open_store(to_url, sqlite_synchronous=synchronous)
    try:
        await upgrade_database(source)
        await upgrade_database(target)
        counts = await copy_store(cast(SqlStore, source), cast(SqlStore, target))
    finally:
        await source.close()
        await target.close()
    lines = [f"{c.table}: {c.source} → {c.target}" for c in counts]
    short = [c for c in counts if c.target < c.source]
    if short:
        raise RuntimeError("copy incomplete: " + ", ".join(f"{c.table}" for c in short))
    return lines


async def upgrade(settings: Settings) -> None:
    from flowgate.store import open_store
    from flowgate.store.migrate import upgrade_database

    configure_logging(settings.log_level, settings.log_format)
    store = open_store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        await upgrade_database(store)
    finally:
        await store.close()
