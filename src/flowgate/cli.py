"""The ``flowgate`` command.

``serve``, ``worker`` and ``db`` work on the database directly; every other command talks to a
server over HTTP through ``flowgate.client``. Its URL and key, first found wins: ``--url`` and
``--key``; ``FLOWGATE_URL`` and ``FLOWGATE_API_KEY``; in a checkout, the ``.flowgate/dev.env``
that ``make run`` writes (in the current folder or a parent: its ``FLOWGATE_ADMIN_KEY``, and its
``FLOWGATE_HOST``/``FLOWGATE_PORT`` if set); ``FLOWGATE_HOST``/``FLOWGATE_PORT`` from the
environment; ``http://127.0.0.1:8080``.

Exit codes: 0 done; 1 the API answered an error, the server could not be reached, or a waited-on
run did not complete; 2 a usage error (a bad option or value); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flowgate.client import DEFAULT_URL, TERMINAL_STATUSES, ApiError, BufferedEvent, Client
from flowgate.documents import DocumentError, document_paths, read_document
from flowgate.settings import Settings, SettingsError, load_settings
from flowgate.types import JSON, JSONObject

app = typer.Typer(no_args_is_help=True, add_completion=False, help="flowgate: durable workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
runs_app = typer.Typer(no_args_is_help=True, help="List, inspect and cancel runs.")
app.add_typer(runs_app, name="runs")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys (admin).")
app.add_typer(keys_app, name="keys")
events_app = typer.Typer(
    no_args_is_help=True, help="Send events to durable waits; list, show and cancel the waits."
)
app.add_typer(events_app, name="events")


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
    """Run the API and the workers in one process."""
    from flowgate.server import serve as run_server

    settings = _settings(
        host=host, port=port, workers=workers, http_allow_hosts=_allow_standins(examples)
    )
    _start(run_server(settings, examples=examples, show_key=show_key))


def _allow_standins(examples: Path | None) -> str | None:
    """Under ``--examples``: ``FLOWGATE_HTTP_ALLOW_HOSTS`` plus the Stripe stand-in's exact
    ``host:port``, the one loopback address the examples call (every other stays refused)."""
    if examples is None:
        return None
    from flowgate.service.standins import STRIPE_ORIGIN

    given = os.environ.get("FLOWGATE_HTTP_ALLOW_HOSTS", "").strip()
    return f"{given},{STRIPE_ORIGIN}" if given else STRIPE_ORIGIN


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
    _start(run_worker(settings))


def _start(main: Coroutine[Any, Any, None]) -> None:
    """Run a server process; a secret key it cannot use is one line on stderr and exit 2."""
    from flowgate.vault import SecretKeyError

    try:
        _run(main)
    except SecretKeyError as exc:
        typer.echo(f"flowgate: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


@db_app.command("copy")
def db_copy(
    to: Annotated[str, typer.Option("--to", help="The PostgreSQL URL to copy into.")],
) -> None:
    """Copy a stopped SQLite store (FLOWGATE_DATABASE_URL) to PostgreSQL and verify counts."""
    from flowgate.server import copy_database
    from flowgate.store.copy import CopyRefused

    settings = _settings()
    if not to.startswith(("postgresql://", "postgres://")):
        typer.echo("flowgate db copy: --to must be a postgresql:// URL", err=True)
        raise typer.Exit(2)
    try:
        lines = asyncio.run(copy_database(settings, to))
    except (CopyRefused, RuntimeError) as exc:
        typer.echo(f"flowgate db copy: {exc}", err=True)
        raise typer.Exit(1) from exc
    for line in lines:
        typer.echo(line)
    typer.echo("copy verified: every table has all its rows")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from flowgate.server import upgrade

    asyncio.run(upgrade(_settings()))
    typer.echo("database is up to date")


# -- commands that talk to a server over HTTP (flowgate.client) ------------------------------

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="FLOWGATE_URL",
        help="Server URL (else .flowgate/dev.env, FLOWGATE_HOST/PORT, http://127.0.0.1:8080).",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="FLOWGATE_API_KEY", help="API key (else .flowgate/dev.env's admin key)."
    ),
]
# Each long-poll of a waited-on run lasts at most this long, so the steps table stays fresh.
_POLL_SECS = 1.0
# ``run --wait`` first asks the server to hold the reply this long (x-api-wait): most runs end
# within it and need one round trip; a longer one is then followed with a live steps table.
_FIRST_WAIT_SECS = 3.0
DEV_ENV = Path(".flowgate") / "dev.env"
_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = "8080"
_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "timed_out": "red",
    "canceled": "magenta",
    "running": "yellow",
    "waiting": "cyan",
    "skipped": "dim",
    "pending": "dim",
    "queued": "dim",
    "received": "green",
}


@dataclass(frozen=True, slots=True)
class Target:
    """The server a command talks to, and where its URL came from (for a connection error)."""

    url: str
    key: str | None
    url_from: str


def find_dev_env(start: Path) -> Path | None:
    """``.flowgate/dev.env`` in ``start`` or the nearest parent that has one."""
    for folder in (start, *start.parents):
        candidate = folder / DEV_ENV
        if candidate.is_file():
            return candidate
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=VALUE`` lines (``export`` and quotes allowed, ``#`` comments); unreadable: empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if sep and name.strip():
            values[name.strip()] = value
    return values


def resolve_target(
    url: str | None,
    key: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Target:
    """The URL and key a command uses, first found wins (see the module's docstring)."""
    env = os.environ if environ is None else environ
    url = url or env.get("FLOWGATE_URL") or None
    key = key or env.get("FLOWGATE_API_KEY") or None
    if url is not None and key is not None:
        return Target(url, key, "--url/FLOWGATE_URL")
    dev_env = find_dev_env(Path.cwd() if cwd is None else cwd)
    dev = read_env_file(dev_env) if dev_env is not None else {}
    key = key or dev.get("FLOWGATE_ADMIN_KEY") or None
    if url is not None:
        return Target(url, key, "--url/FLOWGATE_URL")
    host = dev.get("FLOWGATE_HOST") or env.get("FLOWGATE_HOST") or _DEFAULT_HOST
    port = dev.get("FLOWGATE_PORT") or env.get("FLOWGATE_PORT") or _DEFAULT_PORT
    if dev_env is not None and ("FLOWGATE_HOST" in dev or "FLOWGATE_PORT" in dev):
        url_from = str(dev_env)
    elif "FLOWGATE_HOST" in env or "FLOWGATE_PORT" in env:
        url_from = "FLOWGATE_HOST/FLOWGATE_PORT"
    else:
        return Target(DEFAULT_URL, key, "the default")
    return Target(f"http://{_connect_host(host)}:{port}", key, url_from)


def _connect_host(host: str) -> str:
    """Where a client reaches a server listening on ``host`` (any-address → loopback)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - a listen address, never bound here
        return _DEFAULT_HOST
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@contextmanager
def _connect(url: str | None, key: str | None) -> Iterator[Client]:
    """A client whose errors become ``error: CODE: message`` on stderr and exit code 1."""
    target = resolve_target(url, key)
    try:
        # Runs this client starts record source "cli" (the server reads the header at /run).
        with Client(target.url, target.key, source="cli") as client:
            yield client
    except ApiError as exc:
        _print_error(exc)
        if exc.code == "CONNECTION_ERROR":
            typer.echo(
                f"  the URL came from {target.url_from}; is the server running (make run)? "
                "Set FLOWGATE_URL or pass --url",
                err=True,
            )
        elif exc.code == "UNAUTHORIZED" and target.key is None:
            typer.echo(
                "  no API key: set FLOWGATE_API_KEY, pass --key, or run from the checkout "
                "where `make run` wrote .flowgate/dev.env",
                err=True,
            )
        raise typer.Exit(1) from exc


def _print_error(exc: ApiError, *, where: str | None = None) -> None:
    suffix = f" ({where})" if where else ""
    typer.echo(f"error: {exc.code}: {exc.message}{suffix}", err=True)
    for line in _detail_lines(exc.details):
        typer.echo(f"  {line}", err=True)


def _detail_lines(details: object) -> list[str]:
    if details is None:
        return []
    if isinstance(details, list) and all(isinstance(d, dict) and "message" in d for d in details):
        return [f"{_path(d.get('path'))}: {d['message']}" for d in details]
    return [f"details: {json.dumps(details, ensure_ascii=False)}"]


def _path(path: object) -> str:
    """``["items", 0, "price"]`` → ``items[0].price``: a validation path, readable."""
    if not isinstance(path, list) or not path:
        return "(root)"
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _fail(message: str, *, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _dump(value: JSON) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _cell(value: JSON) -> Text:
    """Plain text: names and messages come from users, so never rich markup."""
    return Text("-" if value is None else str(value))


def _status(value: JSON) -> Text:
    return Text(str(value), style=_STATUS_STYLES.get(str(value), ""))


def _when(value: JSON) -> JSON:
    """``2025-01-02T03:04:05.678Z`` → ``2025-01-02 03:04:05`` (UTC), to keep tables narrow."""
    if not isinstance(value, str):
        return value
    return value.replace("T", " ")[:19]


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, pad_edge=False)


def _out() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # pipes and logs: never cut ids or names to a default 80 columns
    return console


@app.command()
def apply(
    path: Annotated[
        Path, typer.Argument(exists=True, help="A workflow file (YAML or JSON) or a folder.")
    ],
    draft: Annotated[
        bool, typer.Option("--draft", help="Do not activate: new workflows stay drafts.")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create or update workflows from YAML/JSON documents, and activate them."""
    documents = _read_documents(path)
    with _connect(url, key) as client:
        for source, definition in documents:
            try:
                row = client.apply_workflow(definition, activate=not draft)
            except ApiError as exc:
                _print_error(exc, where=str(source))
                raise typer.Exit(1) from exc
            fields = (row.get("id"), row.get("name"), f"v{row.get('version')}", row.get("status"))
            typer.echo("\t".join(map(str, fields)))


def _read_documents(path: Path) -> list[tuple[Path, JSONObject]]:
    """Every definition first, so that a broken file changes nothing on the server."""
    paths = document_paths(path)
    if not paths:
        raise _fail(f"no .yaml, .yml or .json files in {path}")
    found: list[tuple[Path, JSONObject]] = []
    for source in paths:
        try:
            document = read_document(source)
        except DocumentError as exc:
            raise _fail(str(exc)) from exc
        except OSError as exc:
            raise _fail(f"{source}: {exc.strerror or exc}") from exc
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise _fail(f"{source}: a workflow definition must be a mapping")
            found.append((source, item))
    return found


@app.command()
def run(
    workflow: Annotated[str, typer.Argument(help="Workflow id or exact name.")],
    input_json: Annotated[
        str | None, typer.Option("--input", "-i", help="The run's input: a JSON object.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Show the steps until the run ends; exit 1 unless it completes."
        ),
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Start at most one run per key.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=VALUE for the run's env; repeatable.")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(min=-100, max=100, help="Higher runs first (default 0).")
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="Connection id (conn_…) whose credentials to use."),
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Start a run: print its id (and the reply), or with --wait follow it and print its output."""
    payload = _parse_input(input_json)
    overrides = _parse_env(env or [])
    with _connect(url, key) as client:
        started = client.start_run(
            workflow,
            payload,
            env=overrides,
            idempotency_key=idempotency_key,
            priority=priority,
            connection_id=connection,
            wait=_FIRST_WAIT_SECS if wait else None,
        )
        if not wait:
            typer.echo(str(started.get("runId")))
            typer.echo(_dump(started))
            return
        # x-api-wait answers with the whole run, ended (200) or as it is so far (202).
        _finish(client, str(started.get("id") or started.get("runId")), started)


def _started_or_finish(client: Client, started: JSONObject, *, wait: bool) -> None:
    """Print the new run's id and the reply, or with ``wait`` follow it to its end."""
    run_id = str(started.get("runId"))
    if not wait:
        typer.echo(run_id)
        typer.echo(_dump(started))
        return
    _finish(client, run_id, None)


def _finish(client: Client, run_id: str, current: JSONObject | None) -> None:
    """Follow the run until it ends (``current``: as already known), then print its output on
    stdout; one that did not complete prints its error there and on stderr, and exits 1."""
    typer.echo(f"run {run_id} started", err=True)
    try:
        if current is not None and current.get("status") in TERMINAL_STATUSES:
            final = current
            console = Console(stderr=True, highlight=False)
            console.print(_steps_table(final))
        else:
            final = _follow(client, run_id)
    except KeyboardInterrupt:
        typer.echo(f"stopped waiting; the run goes on: flowgate runs show {run_id}", err=True)
        raise typer.Exit(130) from None
    if final.get("status") == "completed":
        typer.echo(_dump(final.get("output")))
        return
    typer.echo(_dump(_run_error(final)))
    raise _fail(_run_failure(final))


def _run_error(run: JSONObject) -> JSONObject:
    """The error of a run that did not complete (``{code, message, stepId?}``), never null."""
    error = run.get("error")
    if isinstance(error, dict):
        return error
    status = str(run.get("status"))
    return {"code": status.upper(), "message": f"The run ended {status}"}


def _parse_input(raw: str | None) -> JSONObject | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise _fail(f"--input is not valid JSON: {exc}", code=2) from exc
    if not isinstance(value, dict):
        raise _fail('--input must be a JSON object, like \'{"name": "Ada"}\'', code=2)
    return value


def _parse_env(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--env takes NAME=VALUE, got {pair!r}", code=2)
        env[name] = value
    return env


def _follow(client: Client, run_id: str) -> JSONObject:
    """Follow the run's stream until it ends, showing its steps live on stderr; long-poll if
    the stream stops early (a proxy that cuts it, a server restarting)."""
    current = client.get_run(run_id).raw
    console = Console(stderr=True, highlight=False)
    live = Live(
        _steps_table(current),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with live:
        with contextlib.suppress(ApiError):
            for run in client.follow_run(run_id):
                current = run.raw
                live.update(_steps_table(current), refresh=True)
        while current.get("status") not in TERMINAL_STATUSES:
            current = client.get_run(run_id, wait_secs=_POLL_SECS).raw
            live.update(_steps_table(current), refresh=True)
    if not console.is_terminal:
        console.line()  # off a terminal, Live prints only the last frame, unterminated
    return current


def _run_failure(run: JSONObject) -> str:
    error = run.get("error")
    where = f"run {run.get('id')} ended {run.get('status')}"
    if not isinstance(error, dict):
        return where
    step = error.get("stepId")
    suffix = f" at step {step}" if step else ""
    return f"{error.get('code')}: {error.get('message')} ({where}{suffix})"


def _steps_table(run: JSONObject) -> Group:
    """The run's headline, then one row per step."""
    title = Text.assemble(
        f"run {run.get('id')} · {run.get('workflowId')} v{run.get('workflowVersion')} · ",
        _status(run.get("status")),
    )
    table = _table()
    for column in ("step", "type", "status", "attempt", "duration", "error"):
        table.add_column(column, justify="right" if column in ("attempt", "duration") else "left")
    steps = run.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        duration = step.get("durationMs")
        error = step.get("error")
        table.add_row(
            _cell(step.get("name") or step.get("id")),
            _cell(step.get("type")),
            _status(step.get("status")),
            _cell(step.get("attempt")),
            _cell(None if duration is None else f"{duration} ms"),
            _cell(
                f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else None
            ),
        )
    return Group(title, table)


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="Workflow id or exact name.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Run status; several separated by commas.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="api, batch, replay, rerun, workflow, cli, …")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Runs per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, as printed.")] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List runs, newest first."""
    with _connect(url, key) as client:
        page = client.list_runs(
            workflowId=workflow, status=status, source=source, limit=limit, cursor=cursor
        )
    items = page.get("data")
    runs = [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []
    if not runs:
        typer.echo("no runs", err=True)
        return
    table = _table()
    for column in ("id", "workflow", "status", "source", "created"):
        table.add_column(column, no_wrap=column in ("id", "status", "created"))
    for item in runs:
        table.add_row(
            _cell(item.get("id")),
            _cell(f"{item.get('workflowId')} v{item.get('workflowVersion')}"),
            _status(item.get("status")),
            _cell(item.get("source")),
            _cell(_when(item.get("createdAt"))),
        )
    _out().print(table)
    if page.get("hasMore"):
        typer.echo(f"more runs: --cursor {page.get('nextCursor')}", err=True)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    json_only: Annotated[bool, typer.Option("--json", help="Only the run's JSON.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print a run as JSON, then a table of its steps."""
    with _connect(url, key) as client:
        found = client.get_run(run_id).raw
    typer.echo(_dump(found))
    if not json_only:
        _out().print(_steps_table(found))


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a run that has not ended."""
    with _connect(url, key) as client:
        canceled = client.cancel_run(run_id)
    typer.echo(f"{canceled.id}\t{canceled.status}")


WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="Show the steps until the new run ends; exit 1 unless it completes."
    ),
]


@runs_app.command("replay")
def runs_replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay.")],
    wait: WaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Start a new run with the same input and workflow version (source replay)."""
    with _connect(url, key) as client:
        started = client.replay(run_id)
        _started_or_finish(client, started.raw, wait=wait)


@runs_app.command("rerun")
def runs_rerun(
    run_id: Annotated[str, typer.Argument(help="The ended run to rerun.")],
    wait: WaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Start a new run from the first step that did not complete, reusing the finished ones."""
    with _connect(url, key) as client:
        started = client.rerun(run_id)
        _started_or_finish(client, started.raw, wait=wait)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.")],
    scopes: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="workflows:execute, runs:read, admin, …; repeatable."),
    ],
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="ISO-8601 time with a zone, e.g. 2030-01-01T00:00Z."),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Project id (default: the creating key's own).")
    ] = None,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", min=1, help="Execute requests per minute.")
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create an API key: its secret goes to stdout, this once only."""
    with _connect(url, key) as client:
        created = client.create_key(
            name,
            scopes,
            project_id=project,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit,
        )
    scope_list = created.get("scopes")
    shown = ", ".join(map(str, scope_list)) if isinstance(scope_list, list) else scope_list
    typer.echo(
        f"created key {created.get('id')} ({created.get('name')}) in {created.get('projectId')}; "
        f"scopes: {shown}; expires: {created.get('expiresAt') or 'never'}",
        err=True,
    )
    typer.echo("the secret is shown only this once; store it now:", err=True)
    typer.echo(str(created.get("key")))


@keys_app.command("list")
def keys_list(url: UrlOption = None, key: KeyOption = None) -> None:
    """List the project's API keys (never their secrets)."""
    with _connect(url, key) as client:
        keys = [k for k in client.list_keys() if isinstance(k, dict)]
    if not keys:
        typer.echo("no keys", err=True)
        return
    table = _table()
    for column in ("id", "name", "prefix", "scopes", "state", "expires", "last used"):
        table.add_column(column, no_wrap=column in ("id", "prefix", "state"))
    for item in keys:
        scopes = item.get("scopes")
        table.add_row(
            _cell(item.get("id")),
            _cell(item.get("name")),
            _cell(item.get("prefix")),
            _cell(", ".join(map(str, scopes)) if isinstance(scopes, list) else scopes),
            Text("revoked", style="red") if item.get("revokedAt") else Text("active"),
            _cell(_when(item.get("expiresAt"))),
            _cell(_when(item.get("lastUsedAt"))),
        )
    _out().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    with _connect(url, key) as client:
        revoked = client.revoke_key(key_id)
    typer.echo(f"revoked {revoked.get('id')} ({revoked.get('name')})")


@events_app.command("list")
def events_list(
    status: Annotated[
        str | None, typer.Option(help="waiting, received, timed_out or canceled.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's waits.")] = None,
    source: Annotated[
        str | None, typer.Option(help="workflow_step (a step's wait) or job_run (standalone).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Event triggers per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page, as printed.")] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List event triggers (durable waits), newest first."""
    with _connect(url, key) as client:
        page = client.list_events(
            status=status, workflow_run_id=run_id, source_type=source, limit=limit, cursor=cursor
        )
    items = page.get("data")
    triggers = [t for t in items if isinstance(t, dict)] if isinstance(items, list) else []
    if not triggers:
        typer.echo("no event triggers", err=True)
        return
    table = _table()
    for column in ("key", "status", "run", "requested", "expires", "received"):
        table.add_column(column, no_wrap=column != "key")
    for item in triggers:
        table.add_row(
            _cell(item.get("event_key")),
            _status(item.get("status")),
            _cell(item.get("workflow_run_id") or item.get("job_run_id")),
            _cell(_when(item.get("requested_at"))),
            _cell(_when(item.get("expires_at"))),
            _cell(_when(item.get("received_at"))),
        )
    _out().print(table)
    if page.get("has_more"):
        typer.echo(f"more event triggers: --cursor {page.get('next_cursor')}", err=True)


@events_app.command("show")
def events_show(
    event_key: Annotated[str, typer.Argument(metavar="KEY", help="The event key.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print the key's event trigger as JSON (its waiting one, else its newest)."""
    with _connect(url, key) as client:
        found = client.get_event(event_key)
    typer.echo(_dump(found.raw))


@events_app.command("send")
def events_send(
    event_key: Annotated[str, typer.Argument(metavar="KEY", help="The event key.")],
    payload_json: Annotated[
        str | None,
        typer.Option("--payload", "-p", help="Any JSON; the waiting step's output (default null)."),
    ] = None,
    buffer_secs: Annotated[
        float | None,
        typer.Option(
            "--buffer-secs", help="If nothing waits yet, keep the event this long for a wait."
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="A repeat with this key gets the first answer."),
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Send an event to the key's waiting trigger: the waiting run resumes with the payload."""
    payload = _parse_payload(payload_json)
    with _connect(url, key) as client:
        sent = client.send_event(
            event_key, payload, buffer_secs=buffer_secs, idempotency_key=idempotency_key
        )
    typer.echo(_dump(sent.raw))
    if isinstance(sent, BufferedEvent):
        typer.echo(
            f"nothing waits for {event_key} yet: the event is kept until "
            f"{_when(sent.raw.get('expires_at'))} UTC for the first wait on it",
            err=True,
        )
    elif sent.workflow_run_id:
        typer.echo(f"received: run {sent.workflow_run_id} resumes", err=True)


def _parse_payload(raw: str | None) -> JSON:
    if raw is None:
        return None
    try:
        value: JSON = json.loads(raw)
    except ValueError as exc:
        raise _fail(f"--payload is not valid JSON: {exc}", code=2) from exc
    return value


@events_app.command("cancel")
def events_cancel(
    event_key: Annotated[str, typer.Argument(metavar="KEY", help="The event key.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel the key's waiting trigger: the step waiting on it ends canceled, its run failed."""
    with _connect(url, key) as client:
        canceled = client.cancel_event(event_key)
    typer.echo(f"{canceled.id}\t{canceled.event_key}\t{canceled.status}")


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
