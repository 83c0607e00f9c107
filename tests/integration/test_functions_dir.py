"""``FLOWGATE_FUNCTIONS_DIR``: python functions from a folder, a start-up that cannot load them
stopped with one line, the shipped ``functions/`` example as ``make run`` serves it, and the
recipe in docs/python-steps.md."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.service.core import build_services
from flowgate.settings import Settings
from tests import recipes
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import create_workflow

ROOT = Path(__file__).resolve().parents[2]
DOC = recipes.DOCS / "python-steps.md"
FLOWGATE = str(Path(sys.executable).parent / "flowgate")
PREFIX = "flowgate: cannot load python functions: "

GREETINGS = """
from __future__ import annotations

import dataclasses
from textwrap import dedent  # imported, so not registered
from typing import Any


@dataclasses.dataclass(frozen=True)
class Greeting:
    text: str


def _helper(config: dict[str, Any], context: Any) -> str:
    return "private"


def greet(config: dict[str, Any], context: Any) -> dict[str, Any]:
    greeting = Greeting(f"Hello, {config['name']}!")
    return {"greeting": greeting.text, "step": context.step_id, "attempt": context.attempt}
"""

EXPLICIT = """
from __future__ import annotations


async def _shout(config, context):
    return str(config["text"]).upper() + " " + context.env["MARK"]


def not_listed(config, context):
    return "FLOWGATE_FUNCTIONS lists what this file registers"


FLOWGATE_FUNCTIONS = {"shout": _shout}
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    folder = _write(tmp_path / "fns", {"greetings.py": GREETINGS, "explicit.py": EXPLICIT})
    return make_settings(functions_dir=folder, workers=1)


async def test_functions_dir_functions_run_in_python_steps(client: httpx.AsyncClient) -> None:
    await create_workflow(
        client,
        {
            "id": "wf_dir",
            "name": "dir",
            "status": "active",
            "env": {"MARK": "!"},
            "steps": [
                {"id": "hi", "type": "python", "config": {"function": "greet", "name": "Ada"}},
                {
                    "id": "loud",
                    "type": "python",
                    "config": {"function": "shout", "text": "{{steps.hi.output.greeting}}"},
                },
            ],
        },
    )

    response = await client.post("/api/v1/workflows/wf_dir/run", headers={"x-api-wait": "true"})

    data = response.json()["data"]
    assert data["status"] == "completed", data
    assert data["steps"][0]["output"] == {"greeting": "Hello, Ada!", "step": "hi", "attempt": 1}
    assert data["output"] == "HELLO, ADA! !"


@pytest.mark.parametrize("name", ["_helper", "dedent", "not_listed"])
async def test_functions_dir_unregistered_names_are_refused_at_write(
    client: httpx.AsyncClient, name: str
) -> None:
    step = {"id": "x", "type": "python", "config": {"function": name}}

    response = await client.post(
        "/api/v1/workflows", json={"id": "wf_x", "name": "x", "steps": [step]}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {
            "path": ["steps", 0, "config", "function"],
            "message": f"No registered function named {name!r}",
        }
    ]


# -- the default folder -------------------------------------------------------------------------


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'flowgate.db'}",
        data_dir=tmp_path / "data",
        **overrides,
    )


async def _function_names(settings: Settings) -> list[str]:
    services = build_services(settings)
    try:
        return list(services.functions)
    finally:
        await services.http.client.aclose()
        await services.store.close()


async def test_default_functions_folder_is_loaded_where_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "functions", {"greetings.py": GREETINGS})
    monkeypatch.chdir(tmp_path)

    assert await _function_names(_settings(tmp_path)) == ["greet"]


async def test_default_functions_folder_missing_loads_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert await _function_names(_settings(tmp_path)) == []


async def test_empty_functions_dir_turns_the_default_folder_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "functions", {"greetings.py": GREETINGS})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWGATE_FUNCTIONS_DIR", "")

    assert await _function_names(Settings(database_url=f"sqlite:///{tmp_path}/x.db")) == []


# -- a start-up that cannot load them -----------------------------------------------------------


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    return {
        **clean,
        "FLOWGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'flowgate.db'}",
        "FLOWGATE_DATA_DIR": str(tmp_path / "data"),
        "FLOWGATE_ADMIN_KEY": ADMIN_KEY,
        "FLOWGATE_HOST": "127.0.0.1",
        "FLOWGATE_PORT": "0",
        **extra,
    }


BROKEN = {
    "syntax": (
        {"broken.py": "x = = 1\n"},
        {},
        "functions/broken.py: SyntaxError: invalid syntax (broken.py, line 1)",
    ),
    "import": (
        {"broken.py": "import flowgate_no_such_module\n"},
        {},
        "functions/broken.py: ModuleNotFoundError: No module named 'flowgate_no_such_module'",
    ),
    "exception": (
        {"ok.py": GREETINGS, "broken.py": "raise RuntimeError('no API token\\nconfigured')\n"},
        {},
        "functions/broken.py: RuntimeError: no API token configured",
    ),
    "duplicate": (
        {"a.py": GREETINGS, "b.py": GREETINGS},
        {},
        "python function 'greet' is defined twice: in functions/a.py and in functions/b.py",
    ),
    "python-modules": (
        {},
        {"FLOWGATE_PYTHON_MODULES": "tests.functions, flowgate_no_such_module"},
        "FLOWGATE_PYTHON_MODULES: cannot import 'flowgate_no_such_module': "
        "ModuleNotFoundError: No module named 'flowgate_no_such_module'",
    ),
    "missing-dir": (
        {},
        {"FLOWGATE_FUNCTIONS_DIR": "elsewhere"},
        "FLOWGATE_FUNCTIONS_DIR: elsewhere is not a directory",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_serve_with_unloadable_functions_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    files, env, line = BROKEN[case]
    if files:
        _write(tmp_path / "functions", files)

    done = subprocess.run(
        [FLOWGATE, "serve"],
        cwd=tmp_path,
        env=_environment(tmp_path, PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stderr, done.stdout) == (2, PREFIX + line + "\n", "")


# -- the shipped example, served as `make run` serves it ----------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _banner_examples(process: asyncio.subprocess.Process) -> str:
    """The banner's `examples:` line: printed once the server listens and has applied them."""
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        if line.strip().startswith("examples:"):
            return line.strip()
    raise AssertionError("the server ended before printing its banner")


async def test_shipped_slugify_example_completes_under_make_run(tmp_path: Path) -> None:
    port = _free_port()
    env = _environment(tmp_path, FLOWGATE_PORT=str(port), FLOWGATE_WORKERS="1")
    upgrade = await asyncio.to_thread(
        subprocess.run,
        [FLOWGATE, "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    # The Makefile's `run` target, from the repository's root as make runs it.
    process = await asyncio.create_subprocess_exec(
        FLOWGATE, "serve", "--examples", "examples", "--show-key",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        examples = await asyncio.wait_for(_banner_examples(process), 60)
        assert "wf_slugify" in examples
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            response = await http.post(
                "/api/v1/workflows/wf_slugify/run", json={}, headers={"x-api-wait": "true"}
            )
    finally:
        process.terminate()
        await process.wait()

    data = response.json()["data"]
    suffix = hashlib.sha256(f"{data['id']}:unique".encode()).hexdigest()[:8]
    assert (data["status"], data["output"]) == (
        "completed",
        {"slug": "creme-brulee-2-pcs", "uniqueSlug": f"creme-brulee-2-pcs-{suffix}"},
    )


# -- docs/python-steps.md -----------------------------------------------------------------------


def test_docs_python_steps_every_sh_block_is_a_tested_example() -> None:
    assert recipes.example_names(DOC) == ["write-function", "call-function"]


async def test_docs_python_steps_recipe_writes_and_calls_a_function(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    written = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", recipes.example(DOC, "write-function")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    settings = make_settings(functions_dir=tmp_path / "functions")

    with ThreadedServer(create_app(settings)) as server:
        done = await recipes.run_example(DOC, "call-function", server.url)

    workflow, completed, failed = recipes.json_documents(done.stdout)
    assert workflow["data"]["id"] == "wf_order_number"
    run = completed["data"]
    number = hashlib.sha256(f"{run['id']}:total".encode()).hexdigest()[:8].upper()
    assert (run["status"], run["output"]) == (
        "completed",
        {"orderNumber": f"ORD-{number}", "total": 25.5, "currency": "USD"},
    )
    assert (failed["data"]["status"], failed["data"]["error"]) == (
        "failed",
        {
            "code": "STEP_FAILED",
            "message": "ValueError: order_total needs a non-empty list in config.items",
            "stepId": "total",
        },
    )
