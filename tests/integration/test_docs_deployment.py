"""docs/deployment.md and deploy/ (issue 11), checked without docker or systemd: every setting
they name exists, every ``flowgate …`` command line they give parses with the real CLI (its
``--help`` succeeds with those flags, and click accepts their values), the compose file is YAML
with the services the doc names, and the systemd units start commands that exist."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
from ruamel.yaml import YAML

from flowgate.cli import app
from flowgate.settings import Settings, load_settings
from tests import recipes

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEPLOYMENT_DOC = recipes.DOCS / "deployment.md"
UPGRADING_DOC = recipes.DOCS / "upgrading.md"
README = ROOT / "README.md"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
FLOWGATE = str(Path(sys.executable).parent / "flowgate")
SETTINGS = {f"FLOWGATE_{name.upper()}" for name in Settings.model_fields}
#: What a systemd specifier stands for in a unit's command line (an instance name).
_SPECIFIERS = {"%i": "8081", "%I": "8081"}
#: click's UsageError as typer bundles it: the class every command-line mistake raises.
USAGE_ERROR = typer.BadParameter.__mro__[1]


def _compose() -> Any:
    return YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text())


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the case of keys
    parser.read_string(path.read_text())
    return parser


def _doc_command_lines(doc: Path) -> list[list[str]]:
    """The ``flowgate …`` lines of the doc's ```sh blocks (``.venv/bin/flowgate`` too), a
    trailing comment left out."""
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```$", doc.read_text(), re.M | re.S)
    lines = [line.strip().removeprefix(".venv/bin/") for b in blocks for line in b.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("flowgate ")]


def _compose_command_lines() -> list[list[str]]:
    services = _compose()["services"]
    return [
        ["flowgate", *service["command"]] for service in services.values() if "command" in service
    ]


def _unit_command_lines() -> list[list[str]]:
    lines = []
    for path in UNITS:
        command = _unit(path)["Service"]["ExecStart"]
        for specifier, value in _SPECIFIERS.items():
            command = command.replace(specifier, value)
        lines.append(shlex.split(command))
    return lines


def _parse_with_click(args: list[str]) -> None:
    """Resolve the subcommands and parse the options (values converted) without running;
    raises the usage error the CLI would report (typer's own click: ``typer.BadParameter``'s
    base class)."""
    command: Any = typer.main.get_command(app)
    context = command.make_context("flowgate", list(args))
    while isinstance(command, typer.core.TyperGroup):
        # click keeps a group's subcommand and its arguments apart until it invokes them.
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, found, rest = command.resolve_command(context, rest)
        assert found is not None, f"no flowgate command {name!r}"
        command, context = found, found.make_context(str(name), rest, parent=context)


@pytest.mark.parametrize(
    "args", [["serve", "--port", "abc"], ["serve", "--bogus"], ["db", "nope"], ["db", "copy"]]
)
def test_a_command_line_the_cli_refuses_is_refused_here(args: list[str]) -> None:
    with pytest.raises(USAGE_ERROR):
        _parse_with_click(args)


def test_deployment_doc_names_the_deploy_files_and_compose_services() -> None:
    text = DEPLOYMENT_DOC.read_text()

    for path in [*UNITS, DEPLOY / "compose.yaml", DEPLOY / "flowgate.env.example"]:
        assert str(path.relative_to(ROOT)) in text, path
    for service in _compose()["services"]:
        assert f"`{service}`" in text, service


def test_readme_links_every_doc_and_the_monitor_screenshots() -> None:
    text = README.read_text()
    linked = set(re.findall(r"\]\((docs/[^)#]+)", text))
    docs = {str(path.relative_to(ROOT)) for path in recipes.DOCS.rglob("*.md")}

    assert docs - linked == set()
    assert {"docs/images/overview.png", "docs/images/runs.png", "docs/images/run.png"} <= linked


def _anchors(doc: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize(
    "doc",
    [
        README,
        DEPLOYMENT_DOC,
        UPGRADING_DOC,
        recipes.DOCS / "concepts.md",
        recipes.DOCS / "workflows.md",
    ],
    ids=lambda path: path.name,
)
def test_relative_links_lead_to_files_and_headings_that_exist(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists() or (anchor and anchor not in _anchors(path)):
            broken.append(target)

    assert broken == []


def test_readme_tour_runs_commands_the_cli_has() -> None:
    tour = {tuple(line[:2]) for line in _doc_command_lines(README)}

    assert {("flowgate", "run"), ("flowgate", "apply")} <= tour


def test_compose_has_postgres_migrate_two_apis_and_two_workers() -> None:
    services = _compose()["services"]

    assert set(services) == {"postgres", "migrate", "api-1", "api-2", "worker-1", "worker-2"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("api-1", "api-2"):
        assert services[name]["command"][:1] == ["serve"]
        assert services[name]["command"][-2:] == ["--workers", "0"]
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"] == ["worker"]
    assert (DEPLOY / services["api-1"]["build"]["context"] / "pyproject.toml").exists()
    assert (DEPLOY / ".." / services["api-1"]["build"]["dockerfile"]).exists()


def test_deploy_files_name_only_settings_that_exist() -> None:
    example = (DEPLOY / "flowgate.env.example").read_text()
    in_example = set(re.findall(r"^#? ?(FLOWGATE_[A-Z0-9_]+)=", example, re.M))
    in_compose = {
        name
        for service in _compose()["services"].values()
        for name in service.get("environment", {})
        if name.startswith("FLOWGATE_")
    }
    in_units = {
        line.split("=", 2)[1]
        for path in UNITS
        for line in path.read_text().splitlines()
        if line.startswith("Environment=")
    }
    in_docs = set(re.findall(r"\bFLOWGATE_[A-Z0-9_]+\b", DEPLOYMENT_DOC.read_text()))
    in_docs |= set(re.findall(r"\bFLOWGATE_[A-Z0-9_]+\b", UPGRADING_DOC.read_text()))
    in_dockerfile = set(
        re.findall(r"\b(FLOWGATE_[A-Z0-9_]+)=", (DEPLOY / "Dockerfile").read_text())
    )

    assert {"FLOWGATE_DATABASE_URL", "FLOWGATE_SECRET_KEY"} <= in_example
    # FLOWGATE_URL and FLOWGATE_API_KEY are the CLI's client settings, not the server's.
    client_side = {"FLOWGATE_URL", "FLOWGATE_API_KEY"}
    for found in (in_example, in_compose, in_units, in_docs - client_side, in_dockerfile):
        assert found - SETTINGS == set()


def test_env_example_is_accepted_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (DEPLOY / "flowgate.env.example").read_text().splitlines():
        if line.startswith("FLOWGATE_"):
            name, value = line.split("=", 1)
            monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.database_url.startswith("postgresql://")
    assert settings.workers == 8


def test_systemd_units_start_flowgate_with_a_home_for_its_environment() -> None:
    assert [path.name for path in UNITS] == ["flowgate-api@.service", "flowgate-worker@.service"]
    for path in UNITS:
        service = _unit(path)["Service"]
        executable = shlex.split(service["ExecStart"])[0]
        assert Path(executable).is_absolute(), executable
        assert Path(executable).name == "flowgate", executable
        assert service["EnvironmentFile"] == "/etc/flowgate/flowgate.env"
    [api, worker] = _unit_command_lines()
    assert api[1:2] == ["serve"]
    assert api[-2:] == ["--workers", "0"]
    assert worker[1:] == ["worker"]


COMMAND_LINES = [
    *_doc_command_lines(README),
    *_doc_command_lines(DEPLOYMENT_DOC),
    *_doc_command_lines(UPGRADING_DOC),
    *_compose_command_lines(),
    *_unit_command_lines(),
]


def test_docs_give_the_commands_an_operator_needs() -> None:
    commands = {tuple(line[1:3]) for line in COMMAND_LINES}

    assert {("db", "upgrade"), ("worker",), ("db", "copy")} <= commands | {
        tuple(line[1:2]) for line in COMMAND_LINES
    }


@pytest.mark.parametrize("line", COMMAND_LINES, ids=[" ".join(line) for line in COMMAND_LINES])
def test_command_line_parses_with_the_real_cli(
    line: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # paths in the docs are relative to the checkout
    # A file the reader wrote first (the tour's my_first.yaml): an empty one of that name.
    args = []
    for arg in line[1:]:
        if arg.endswith((".yaml", ".yml", ".json")) and not (ROOT / arg).exists():
            (tmp_path / arg).touch()
            arg = str(tmp_path / arg)
        args.append(arg)
    _parse_with_click(args)
    shown = subprocess.run(
        [FLOWGATE, *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )

    assert shown.returncode == 0, shown.stderr
    assert "Usage: flowgate" in shown.stdout
