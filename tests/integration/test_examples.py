"""Every file in examples/ loads, declares the inputs it reads, and runs to the status it is
meant to reach with its own example input: ``completed``, except ``wf_fails_on_purpose``, which
fails on purpose (error code FAILED) so the monitor has a failed run to show. The Stripe and SMTP
calls of ``wf_process_customer_order`` go to the stand-ins ``serve --examples`` starts
(flowgate.service.standins)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from liquid import Environment

from flowgate.documents import document_paths, read_document
from flowgate.service.connections import WriteConnection, get_connection, update_connection
from flowgate.service.core import build_services, running
from flowgate.service.examples import ADMIN, point_stripe_connection
from flowgate.service.standins import SENDER, STRIPE_PORT, Standins
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import ORDER_INPUT
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FLOWGATE = str(Path(sys.executable).parent / "flowgate")
STRIPE_CONNECTION = "conn_default_stripe"
#: The one example meant to fail, and the error it fails with (it says so in its first lines).
FAILS_ON_PURPOSE = "wf_fails_on_purpose"
PURPOSEFUL_ERROR = {
    "code": "FAILED",
    "message": 'This run failed on purpose (send {"ok": true} to pass)',
    "stepId": "refuse",
}
EXAMPLE_PATHS = document_paths(EXAMPLES)


def _example(path: Path) -> dict[str, Any]:
    definition = read_document(path)
    assert isinstance(definition, dict)
    return definition


def _example_input(definition: dict[str, Any]) -> dict[str, Any]:
    """The first entry of the example's ``inputSchema.examples`` (every example has one)."""
    examples = definition["inputSchema"]["examples"]
    assert isinstance(examples[0], dict), definition["id"]
    return examples[0]


def _run_request(definition: dict[str, Any]) -> dict[str, Any]:
    """As a newcomer sends it: no connection named (the order example's stripe step falls back
    to the project's ``conn_default_stripe``)."""
    return {"input": _example_input(definition)}


def _expected(workflow_id: str) -> tuple[str, dict[str, str] | None]:
    return ("failed", PURPOSEFUL_ERROR) if workflow_id == FAILS_ON_PURPOSE else ("completed", None)


# -- every input a template reads is declared -----------------------------------------------------

#: python-liquid's own analysis (the library engine/templating.py renders with): the variables a
#: template reads from outside it, as path segments (["input", "customerEmail"]).
_LIQUID = Environment()


def _templates(definition: dict[str, Any]) -> Iterator[str]:
    """Every template in a definition, ``if:`` conditions as the ``{% if %}`` they run as."""

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for step in definition.get("steps", []):
        yield from strings(step.get("config"))
        if isinstance(step.get("if"), str):
            yield (
                "{% if "
                + step["if"].strip().removeprefix("{{").removesuffix("}}")
                + " %}{% endif %}"
            )
    yield from strings(definition.get("output"))


def undeclared_inputs(definition: dict[str, Any]) -> set[str]:
    """The ``input.<name>``s the definition's templates read that its inputSchema lacks."""
    read = set()
    for source in _templates(definition):
        for segments in _LIQUID.parse(source).global_variable_segments():
            if len(segments) > 1 and segments[0] == "input":
                read.add(str(segments[1]))
    declared = (definition.get("inputSchema") or {}).get("properties") or {}
    return read - set(declared)


@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=lambda p: p.name)
def test_example_schema_declares_every_input_its_steps_read(path: Path) -> None:
    assert undeclared_inputs(_example(path)) == set()


def test_undeclared_inputs_finds_one_read_in_a_step_a_condition_and_the_output() -> None:
    definition = {
        "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "steps": [
            {"id": "a", "type": "email", "config": {"to": "{{input.customerEmail}}"}},
            {"id": "b", "type": "fail", "if": "input.ok != true", "config": {}},
        ],
        "output": {"n": "{{ input.name }} {{ input.items | map: 'price' | sum }}"},
    }

    assert undeclared_inputs(definition) == {"customerEmail", "ok", "items"}


@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=lambda p: p.name)
def test_example_input_has_every_required_field(path: Path) -> None:
    definition = _example(path)
    required = definition["inputSchema"].get("required", [])

    assert set(required) <= set(_example_input(definition))


# -- each example runs to its status against the stand-ins -----------------------------------


@pytest.fixture
def standins() -> Iterator[Standins]:
    """The stand-ins ``serve --examples`` starts, on free ports here (tests run side by side)."""
    running = Standins(stripe_port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings], standins: Standins) -> Settings:
    # What `serve --examples` sets: only the Stripe stand-in's host:port passes the outbound
    # guard, and email without a connection goes to the SMTP stand-in.
    return make_settings(
        http_allow_hosts=f"127.0.0.1:{standins.stripe_port}",
        smtp_host="127.0.0.1",
        smtp_port=standins.smtp_port,
        smtp_from=SENDER,
    )


@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=lambda p: p.name)
async def test_example_with_its_example_input_runs_to_expected_status(
    client: httpx.AsyncClient, standins: Standins, path: Path
) -> None:
    connection = await client.post(
        "/api/v1/connections",
        json={
            "id": STRIPE_CONNECTION,
            "name": "Stripe stand-in",
            "type": "stripe",
            "config": {"apiBase": standins.stripe_url},
            "credentials": {"secretKey": "sk_test_standin"},
        },
    )
    assert connection.status_code == 201, connection.text
    definition = _example(path)
    created = await client.post("/api/v1/workflows", json={**definition, "status": "active"})
    assert created.status_code == 201, created.text

    response = await client.post(
        f"/api/v1/workflows/{definition['id']}/run",
        json=_run_request(definition),
        headers={"x-api-wait": "true"},
    )

    data = response.json()["data"]
    assert (data["status"], data["error"]) == _expected(definition["id"])


async def test_order_example_invoices_stand_in_and_mails_confirmation(
    client: httpx.AsyncClient, standins: Standins
) -> None:
    await client.post(
        "/api/v1/connections",
        json={
            "id": STRIPE_CONNECTION,
            "name": "Stripe stand-in",
            "type": "stripe",
            "config": {"apiBase": standins.stripe_url},
            "credentials": {"secretKey": "sk_test_standin"},
        },
    )
    definition = _example(EXAMPLES / "process_customer_order.json")
    await client.post("/api/v1/workflows", json={**definition, "status": "active"})

    response = await client.post(
        "/api/v1/workflows/wf_process_customer_order/run",
        json=_run_request(definition),
        headers={"x-api-wait": "true"},
    )

    data = response.json()["data"]
    invoice = data["steps"][1]["output"]
    assert invoice["id"].startswith("in_standin_")
    # The total, 27.54 in the main unit, reaches Stripe in the minor unit.
    assert (invoice["number"], invoice["amount_due"], invoice["metadata"]) == (
        "STANDIN-0001",
        2754,
        {"source": "api-order"},
    )
    [mail] = standins.mails
    assert mail.to == ["ada@example.com"]
    assert mail.subject == "Order Confirmed - Invoice #STANDIN-0001"
    html = next(
        part
        for part in message_from_bytes(mail.message).walk()
        if part.get_content_type() == "text/html"
    )
    assert "Total: $27.54" in html.get_payload(decode=True).decode()


async def test_order_example_total_is_27_54(client: httpx.AsyncClient) -> None:
    definition = _example(EXAMPLES / "order_total.yaml")
    await client.post("/api/v1/workflows", json={**definition, "status": "active"})

    response = await client.post(
        "/api/v1/workflows/wf_order_total/run",
        json={"input": ORDER_INPUT},
        headers={"x-api-wait": "true"},
    )

    assert response.json()["data"]["output"] == {"subtotal": 25.5, "tax": 2.04, "total": 27.54}


# -- the examples' Stripe connection ---------------------------------------------------------


async def test_stripe_connection_follows_stand_in_until_operator_repoints_it(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(build_services(make_settings()), workers=0) as svc:
        await point_stripe_connection(svc, "http://127.0.0.1:1111")
        await point_stripe_connection(svc, "http://127.0.0.1:2222")  # a later start: re-pointed
        ours = await get_connection(svc, ADMIN, STRIPE_CONNECTION)
        real = {"apiBase": "https://api.stripe.com"}
        await update_connection(
            svc, ADMIN, STRIPE_CONNECTION, WriteConnection(config=real, credentials=None)
        )
        await point_stripe_connection(svc, "http://127.0.0.1:3333")  # yours now: left alone
        kept = await get_connection(svc, ADMIN, STRIPE_CONNECTION)

    assert ours["config"] == {"apiBase": "http://127.0.0.1:2222", "standin": True}
    assert kept["config"] == real


# -- `make run`: flowgate serve --examples examples --show-key, as a process -----------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _banner(process: asyncio.subprocess.Process) -> list[str]:
    """The banner's lines, up to the order example's CLI line (its last)."""
    assert process.stdout is not None
    lines: list[str] = []
    while line := (await process.stdout.readline()).decode():
        lines.append(line.rstrip("\n"))
        if line.rstrip().endswith("--wait"):
            return lines
    raise AssertionError(f"the server ended before printing its banner: {lines}")


async def _serve_examples(tmp_path: Path, port: int) -> tuple[asyncio.subprocess.Process, Path]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env = {
        **clean,
        "FLOWGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'flowgate.db'}",
        "FLOWGATE_DATA_DIR": str(tmp_path / "data"),
        "FLOWGATE_ADMIN_KEY": ADMIN_KEY,
        "FLOWGATE_PORT": str(port),
        "FLOWGATE_WORKERS": "2",
        "FLOWGATE_LOG_FORMAT": "json",
    }
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
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            FLOWGATE, "serve", "--examples", "examples", "--show-key",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    return process, log


async def test_make_run_every_example_completes_against_stand_ins(tmp_path: Path) -> None:
    assert _port_free(STRIPE_PORT), f"127.0.0.1:{STRIPE_PORT} (the Stripe stand-in's) is taken"
    port = free_port()
    process, log = await _serve_examples(tmp_path, port)
    results = {}
    try:
        banner = await asyncio.wait_for(_banner(process), 60)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            for path in EXAMPLE_PATHS:
                definition = _example(path)
                response = await http.post(
                    f"/api/v1/workflows/{definition['id']}/run",
                    json=_run_request(definition),
                    headers={"x-api-wait": "true"},
                )
                data = response.json()["data"]
                results[definition["id"]] = (data["status"], data["error"])
    finally:
        process.terminate()
        await process.wait()

    assert results == {_example(p)["id"]: _expected(_example(p)["id"]) for p in EXAMPLE_PATHS}
    text = "\n".join(banner)
    assert f"Stripe http://127.0.0.1:{STRIPE_PORT} (connection {STRIPE_CONNECTION})" in text
    assert "not real services" in text
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = next(e for e in events if e.get("event") == "examples.standins_started")
    assert "not real services" in started["note"]
    [mail] = [e for e in events if e.get("event") == "examples.standin_mail_received"]
    assert (mail["to"], mail["subject"]) == (
        "ada@example.com",
        "Order Confirmed - Invoice #STANDIN-0001",
    )
