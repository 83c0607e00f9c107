"""Secrets at rest (DESIGN §7): private files, a usable secret key, credentials that cannot be
decrypted fail their step instead of running without them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowgate.api.app import create_app
from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store.migrate import upgrade_database
from flowgate.vault import SecretKeyError, Vault
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import create_workflow

FLOWGATE = str(Path(sys.executable).parent / "flowgate")
CREDENTIAL = "hunter2-credential-value"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so that only flowgate's own modes can make files private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_022")
async def test_sqlite_store_fresh_path_creates_files_0600_and_directories_0700(
    tmp_path: Path,
) -> None:
    database = tmp_path / "state" / "db" / "flowgate.db"
    store = open_store(f"sqlite:///{database}")
    try:
        await upgrade_database(store)
        created = {
            name: mode(path)
            for name, path in {
                "db": database,
                "wal": database.with_name("flowgate.db-wal"),
                "shm": database.with_name("flowgate.db-shm"),
                "state/": tmp_path / "state",
                "state/db/": tmp_path / "state" / "db",
            }.items()
        }
    finally:
        await store.close()

    assert created == {"db": 0o600, "wal": 0o600, "shm": 0o600, "state/": 0o700, "state/db/": 0o700}


@pytest.mark.usefixtures("umask_022")
def test_vault_fresh_data_dir_creates_key_0600_and_directories_0700(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "flowgate"

    Vault.from_settings(None, data_dir).encrypt({"token": "t"})

    key = data_dir / "secret.key"
    assert (mode(key), mode(data_dir), mode(tmp_path / "data")) == (0o600, 0o700, 0o700)
    assert len(key.read_text()) >= 32
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key"]


@pytest.mark.parametrize("content", ["", "  \n"])
def test_vault_empty_key_file_check_raises_secret_key_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "secret.key").write_text(content)

    with pytest.raises(SecretKeyError) as raised:
        Vault.from_settings(None, tmp_path).check()

    assert str(raised.value) == (
        f"the secret key file {tmp_path / 'secret.key'} is empty: "
        "restore it, or set FLOWGATE_SECRET_KEY"
    )


def test_vault_unreadable_key_file_check_raises_secret_key_error(tmp_path: Path) -> None:
    (tmp_path / "secret.key").mkdir()  # unreadable as a file, even for root

    with pytest.raises(SecretKeyError) as raised:
        Vault.from_settings(None, tmp_path).check()

    assert str(raised.value) == (
        f"cannot read the secret key file {tmp_path / 'secret.key'}: Is a directory"
    )


def test_vault_key_file_cannot_be_created_check_raises_secret_key_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the data directory should go")
    key = tmp_path / "taken" / "data" / "secret.key"

    with pytest.raises(SecretKeyError) as raised:
        Vault.from_settings(None, key.parent).check()

    assert str(raised.value) == f"cannot create the secret key file {key}: Not a directory"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``flowgate serve`` on a fresh SQLite file; must stop by itself (the timeout is a guard)."""
    return subprocess.run(
        [FLOWGATE, "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")},
            "FLOWGATE_DATABASE_URL": f"sqlite:///{tmp_path}/flowgate.db",
            "FLOWGATE_DATA_DIR": str(tmp_path / "data"),
            "FLOWGATE_PORT": "0",
            "FLOWGATE_WORKERS": "0",
            **env,
        },
        check=False,
    )


@pytest.mark.parametrize("blank", ["", "   "])
def test_serve_blank_secret_key_env_exits_2_with_one_line(tmp_path: Path, blank: str) -> None:
    result = _serve(tmp_path, FLOWGATE_SECRET_KEY=blank)

    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [
            "flowgate: invalid configuration: FLOWGATE_SECRET_KEY: Value error, is empty; "
            "set a long random value, or unset it to use a key file"
        ],
    )


def test_serve_empty_secret_key_file_exits_2_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "data" / "secret.key"
    key.parent.mkdir()
    key.write_text("")

    result = _serve(tmp_path)

    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [
            f"flowgate: invalid configuration: the secret key file {key} is empty: "
            "restore it, or set FLOWGATE_SECRET_KEY"
        ],
    )


def test_serve_unreadable_secret_key_file_exits_2_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "data" / "secret.key"
    key.mkdir(parents=True)

    result = _serve(tmp_path)

    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [f"flowgate: invalid configuration: cannot read the secret key file {key}: Is a directory"],
    )


# -- a credential that cannot be decrypted ----------------------------------------------------

TARGET_REQUESTS: list[str] = []


async def _record(request: Request) -> Response:
    TARGET_REQUESTS.append(f"{request.method} {request.url.path}")
    return JSONResponse({"ok": True})


@pytest.fixture
def target() -> Iterator[str]:
    """A loopback service the step would call with the connection's secret header."""
    TARGET_REQUESTS.clear()
    app = Starlette(routes=[Route("/{path:path}", _record, methods=["GET", "POST"])])
    with ThreadedServer(app) as running:
        yield running.url


WORKFLOW = {
    "id": "wf_call_target",
    "name": "call target",
    "status": "active",
    "steps": [
        {
            "id": "call",
            "type": "action",
            "action": "http.request",
            "connectionId": "conn_target",
            "config": {"method": "POST", "url": "/hook", "body": {"n": 1}},
        }
    ],
}


async def _store_connection(settings: Settings, target: str) -> None:
    with ThreadedServer(create_app(settings)) as first:
        async with httpx.AsyncClient(base_url=first.url, headers={"x-api-key": ADMIN_KEY}) as http:
            created = await http.post(
                "/api/v1/connections",
                json={
                    "id": "conn_target",
                    "name": "target",
                    "type": "http",
                    "config": {"baseUrl": target},
                    "credentials": {"headers": {"x-secret": CREDENTIAL}},
                },
            )
            assert created.status_code == 201, created.text
            await create_workflow(http, WORKFLOW)


async def test_run_connection_stored_under_other_secret_key_fails_step_without_calling(
    make_settings: Callable[..., Settings], target: str
) -> None:
    await _store_connection(
        make_settings(secret_key="first-secret-key", http_allow_private=True), target
    )
    settings = make_settings(secret_key="second-secret-key", http_allow_private=True)

    with ThreadedServer(create_app(settings)) as second:
        async with httpx.AsyncClient(
            base_url=second.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            response = await http.post(
                "/api/v1/workflows/wf_call_target/run",
                json={"input": {}},
                headers={"x-api-wait": "true"},
            )

    run = response.json()["data"]
    assert (response.status_code, run["status"]) == (200, "failed"), response.text
    assert run["error"] == {
        "code": "STEP_FAILED",
        "message": "The credentials of connection 'conn_target' cannot be decrypted: "
        "was the secret key changed?",
        "stepId": "call",
    }
    assert [(s["id"], s["status"], s["error"]) for s in run["steps"]] == [
        ("call", "failed", run["error"])
    ]
    assert TARGET_REQUESTS == []
    for secret in (CREDENTIAL, "first-secret-key", "second-secret-key"):
        assert secret not in response.text


async def test_undecryptable_connection_of_another_provider_does_not_fail_the_step(
    make_settings: Callable[..., Settings], target: str
) -> None:
    """The run's connection is an http one the new key cannot read; a Slack step never uses
    it, so it must not fail on it (its credentials are not even decrypted)."""
    await _store_connection(
        make_settings(secret_key="first-secret-key", http_allow_private=True), target
    )
    slack = {
        "id": "wf_slack",
        "name": "slack",
        "status": "active",
        "steps": [
            {
                "id": "post",
                "type": "action",
                "action": "slack.postMessage",
                "config": {"webhookUrl": f"{target}/slack", "text": "hi"},
            }
        ],
    }
    settings = make_settings(secret_key="second-secret-key", http_allow_private=True)

    with ThreadedServer(create_app(settings)) as second:
        async with httpx.AsyncClient(
            base_url=second.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            await create_workflow(http, slack)
            response = await http.post(
                "/api/v1/workflows/wf_slack/run",
                json={"connectionId": "conn_target"},
                headers={"x-api-wait": "true"},
            )

    assert response.json()["data"]["status"] == "completed", response.text
    assert TARGET_REQUESTS == ["POST /slack"]
