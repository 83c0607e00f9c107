"""The ``flowgate`` command.

``serve``, ``worker`` and ``db`` work on the database directly; every other command talks to a
server over HTTP through ``flowgate.client`` (``--url``/``FLOWGATE_URL``,
``--key``/``FLOWGATE_API_KEY``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from flowgate.settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="flowgate: durable workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"flowgate: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (FLOWGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (FLOWGATE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker slots (FLOWGATE_WORKERS).")] = None,
    examples: Annotated[
        Path | None, typer.Option(help="Apply and activate the workflows in this folder.")
    ] = None,
    show_key: Annotated[
        bool, typer.Option(help="Print the admin key and a ready curl line once started.")
    ] = False,
) -> None:
    """Run the API, the workers and the scheduler in one process."""
    from flowgate.server import serve as run_server

    settings = _settings(host=host, port=port, workers=workers)
    _run(run_server(settings, examples=examples, show_key=show_key))


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Worker slots (FLOWGATE_WORKERS).")
    ] = None,
) -> None:
    """Run workers only (PostgreSQL: any number of these may share one database)."""
    from flowgate.server import run_worker

    settings = _settings(workers=concurrency)
    if settings.is_sqlite:
        typer.echo(
            "flowgate worker needs PostgreSQL: on SQLite everything runs in one process "
            "(`flowgate serve`). Set FLOWGATE_DATABASE_URL=postgresql://…",
            err=True,
        )
        raise typer.Exit(2)
    _run(run_worker(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from flowgate.server import upgrade

    asyncio.run(upgrade(_settings()))
    typer.echo("database is up to date")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (uvicorn[standard] brings it), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
