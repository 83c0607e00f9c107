"""What ``make run`` adds on start: the example workflows, local stand-ins for the services they
call, and a banner with the key to use.

``wf_process_customer_order`` creates a Stripe invoice and sends an email. Under ``--examples``
the server starts :mod:`flowgate.service.standins` and
- points the connection ``conn_default_stripe`` at the Stripe stand-in (created, or updated if
  it still points at a stand-in; a connection the operator re-pointed, to Stripe's test mode say,
  is left alone): a stripe step uses the project's ``conn_default_stripe`` when neither the
  step nor its run names a connection;
- sends email without a connection to the SMTP stand-in, unless ``FLOWGATE_SMTP_HOST`` names a
  mail server.
Reaching the Stripe stand-in on loopback needs its exact ``host:port`` in the outbound guard's
allow-list, which ``flowgate serve --examples`` adds (no other loopback address opens).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from flowgate import errors
from flowgate.documents import DocumentError, document_paths, read_document
from flowgate.engine.steps import SmtpDefaults
from flowgate.service.auth import DEFAULT_PROJECT_ID, Principal
from flowgate.service.connections import (
    WriteConnection,
    create_connection,
    get_connection,
    update_connection,
)
from flowgate.service.core import Services
from flowgate.service.projects import BOOTSTRAP_KEY_ID, DEFAULT_ORG_ID
from flowgate.service.standins import (
    HOST,
    SENDER,
    STANDIN_SECRET_KEY,
    STRIPE_ORIGIN,
    STRIPE_PORT,
    Standins,
)
from flowgate.service.workflows import apply_workflow
from flowgate.types import JSONObject

log = logging.getLogger(__name__)

ADMIN = Principal(
    key_id=BOOTSTRAP_KEY_ID,
    project_id=DEFAULT_PROJECT_ID,
    org_id=DEFAULT_ORG_ID,
    scopes=frozenset({"admin"}),
    rate_limit_per_minute=None,
    is_bootstrap=True,
)
STRIPE_CONNECTION = "conn_default_stripe"
#: Marks a connection this module manages (and may re-point at the stand-in on every start).
STANDIN_MARK = "standin"


async def load_examples(svc: Services, folder: Path) -> list[str]:
    """Apply and activate every workflow document in ``folder``; returns their ids."""
    loaded = []
    for path in document_paths(folder):
        try:
            body = read_document(path)
            if not isinstance(body, dict):
                raise DocumentError(f"{path}: a workflow document must be a mapping")
            row = await apply_workflow(svc, ADMIN, body)
        except (DocumentError, errors.FlowgateError) as exc:
            log.error("examples.invalid", extra={"path": str(path), "error": str(exc)})
            continue
        loaded.append(row["id"])
    return loaded


async def start_standins(svc: Services) -> Standins | None:
    """Start the stand-ins and wire the examples to them; None (logged) when a port is taken."""
    try:
        standins = Standins()
        await asyncio.to_thread(standins.start)
    except OSError as exc:
        log.warning(
            "examples.standins_not_started",
            extra={"stripe": STRIPE_ORIGIN, "error": str(exc)},
        )
        standins = None
    try:
        await point_stripe_connection(svc, f"http://{STRIPE_ORIGIN}")
    except errors.FlowgateError as exc:  # the server still serves; the order example will say
        log.error("examples.stripe_connection_failed", extra={"error": str(exc)})
    if standins is None:
        return None
    if svc.settings.smtp_host is None:
        svc.executor.smtp = SmtpDefaults(host=HOST, port=standins.smtp_port, sender=SENDER)
    log.info(
        "examples.standins_started",
        extra={
            "stripe": standins.stripe_url,
            "smtp": f"{HOST}:{standins.smtp_port}",
            "note": f"Stripe and SMTP stand-ins on {HOST}:{standins.stripe_port} and "
            f"{HOST}:{standins.smtp_port}: not real services",
        },
    )
    return standins


async def point_stripe_connection(svc: Services, api_base: str) -> None:
    """Create ``conn_default_stripe`` for the stand-in, or re-point it if it is still ours."""
    write = WriteConnection(
        id=STRIPE_CONNECTION,
        name="Stripe stand-in (examples; not real Stripe)",
        type="stripe",
        config={"apiBase": api_base, STANDIN_MARK: True},
        credentials={"secretKey": STANDIN_SECRET_KEY},
    )
    try:
        await create_connection(svc, ADMIN, write)
        return
    except errors.Conflict:
        current = await get_connection(svc, ADMIN, STRIPE_CONNECTION)
    if current["type"] == "stripe" and current["config"].get(STANDIN_MARK) is True:
        await update_connection(svc, ADMIN, STRIPE_CONNECTION, write)
    else:
        log.info("examples.stripe_connection_kept", extra={"connection_id": STRIPE_CONNECTION})


async def after_start(svc: Services, *, examples: Path | None, show_key: bool) -> None:
    standins = await start_standins(svc) if examples is not None else None
    loaded = await load_examples(svc, examples) if examples is not None else []
    if show_key:
        _banner(svc, loaded, standins, order_input=await _example_input(svc, loaded))


async def _example_input(svc: Services, loaded: list[str]) -> JSONObject | None:
    """The order example's first ``inputSchema.examples`` entry, for the banner."""
    if "wf_process_customer_order" not in loaded:
        return None
    workflow = await svc.store.get_workflow(DEFAULT_PROJECT_ID, "wf_process_customer_order")
    schema = workflow["definition"].get("inputSchema") if workflow is not None else None
    found = schema.get("examples") if isinstance(schema, dict) else None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else None


def _banner(
    svc: Services, loaded: list[str], standins: Standins | None, *, order_input: JSONObject | None
) -> None:
    base = svc.settings.base_url
    key = svc.settings.admin_key or "<set FLOWGATE_ADMIN_KEY>"
    body = (
        '{"input": {"customerId": "c1", "items": [{"product": "a", "quantity": 2, "price": 10}, '
        '{"product": "b", "quantity": 1, "price": 5.5}]}}'
    )
    order = body.removeprefix('{"input": ').removesuffix("}")
    lines = [
        "",
        f"flowgate is running on {base}",
        f"  admin API key:  {key}",
        f"  runs monitor:   {base}/ui",
        f"  API docs:       {base}/docs",
        f"  examples:       {', '.join(loaded) or 'none'}",
        *_standin_lines(svc, loaded, standins),
        "",
        "Start a run:",
        f"  curl -s -X POST {base}/api/v1/workflows/wf_order_total/run \\",
        f'    -H "x-api-key: {key}" -H "Content-Type: application/json" \\',
        f"    -d '{body}'",
        "Then look at it:",
        f'  curl -s {base}/api/v1/runs/<runId> -H "x-api-key: {key}"',
        "",
        "Or with the CLI (in this checkout it reads the URL and key from .flowgate/dev.env;",
        "elsewhere, first):",
        f"  export FLOWGATE_URL={base} FLOWGATE_API_KEY={key}",
        f"  .venv/bin/flowgate run wf_order_total --input '{order}' --wait",
        *_order_lines(order_input),
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _standin_lines(svc: Services, loaded: list[str], standins: Standins | None) -> list[str]:
    if not loaded:
        return []
    if standins is None:
        return [
            f"  stand-ins:      not started ({HOST}:{STRIPE_PORT} is taken; see the log);",
            f"                  {STRIPE_CONNECTION} calls whatever answers there",
        ]
    mail = (
        f"SMTP {HOST}:{standins.smtp_port} for email without a connection (kept, not sent)"
        if svc.settings.smtp_host is None
        else f"(email goes to FLOWGATE_SMTP_HOST {svc.settings.smtp_host}, a real mail server)"
    )
    return [
        "  stand-ins:      local, not real services (examples/README.md):",
        f"                  Stripe {standins.stripe_url} (connection {STRIPE_CONNECTION})",
        f"                  {mail}",
    ]


def _order_lines(order_input: JSONObject | None) -> list[str]:
    if order_input is None:
        return []
    return [
        "The order example creates an invoice and emails a confirmation (both stand-ins):",
        "  .venv/bin/flowgate run wf_process_customer_order \\",
        f"    --input '{json.dumps(order_input)}' --wait",
    ]
