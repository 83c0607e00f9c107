"""Runs started through a dialect (Pinkfish, Axiom, Shipyard: DESIGN §4), and their inbox.

A dialect module in ``api/dialects/`` translates its request into a ``DialectCall`` and its
answer from a ``DialectStarted``; everything else happens here and in ``start_run``, so a
dialect call counts like any other run (the key's execute rate limit, the project's quota and
concurrency) and shows like one (its ``source``, the inbox, the monitor).

Each call is kept in the inbox (``trigger_deliveries``) with its workflow, its dialect and the
run it was translated into, the request's secrets masked by the dialect. The delivery is written
once, after the run is recorded, with its verdict: the run is what must not be lost, and one
write per call is half the cost of the webhook's record-then-finish.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from flowgate import errors, ids
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.runs import StartedRun, StartRun, start_run
from flowgate.service.webhooks import MASK, SECRET_HEADERS, Arrival
from flowgate.service.workflows import find_workflow
from flowgate.store.base import DeliveryRow, Page, WorkflowRow
from flowgate.types import JSONObject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialectCall:
    """One dialect request, translated.

    ``arrival`` is the request as the inbox keeps it: the dialect masks what carries a key in
    its path or body; headers in ``SECRET_HEADERS`` (and ``extra_secret_headers``) are masked
    here.
    """

    #: ``pinkfish``, ``axiom`` or ``shipyard``: the run's ``source`` and the delivery's.
    source: str
    #: A workflow id or exact name, or (``by_trigger``) a trigger id.
    target: str
    by_trigger: bool = False
    #: Only an exact name matches (Axiom), never an id.
    by_name: bool = False
    run: StartRun
    arrival: Arrival
    extra_secret_headers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class DialectStarted:
    started: StartedRun
    workflow: WorkflowRow
    #: The trigger the call named, if it named one.
    trigger_id: str | None


async def start_dialect_run(
    svc: Services, principal: Principal, call: DialectCall
) -> DialectStarted:
    """Find the workflow, start its run, keep the call in the inbox.

    Raises NotFound ("Workflow not found", "Trigger not found"), InvalidStatus (a disabled
    trigger) and whatever ``start_run`` raises; a call refused after its workflow is known is
    kept in the inbox as ``rejected`` with the reason.
    """
    principal.require("workflows:execute")
    workflow, trigger_id = await _resolve(svc, principal, call)
    command = dataclasses.replace(call.run, workflow=workflow["id"], source=call.source)
    try:
        started = await start_run(svc, principal, command)
    except errors.FlowgateError as exc:
        refused = _delivery(svc, principal, call, workflow, trigger_id, run_id=None)
        await _keep(svc, {**refused, "reason": exc.message})
        raise
    await _keep(
        svc, _delivery(svc, principal, call, workflow, trigger_id, run_id=started.run["id"])
    )
    return DialectStarted(started=started, workflow=workflow, trigger_id=trigger_id)


async def _resolve(
    svc: Services, principal: Principal, call: DialectCall
) -> tuple[WorkflowRow, str | None]:
    if call.by_trigger:
        trigger = await svc.store.get_trigger(principal.project_id, call.target)
        if trigger is None:
            raise errors.NotFound("Trigger not found")
        if not trigger["enabled"]:
            raise errors.InvalidStatus("Trigger is disabled")
        workflow = await find_workflow(svc, principal.project_id, trigger["workflow_id"])
        if workflow is None:
            raise errors.NotFound("Workflow not found")
        return workflow, trigger["id"]
    workflow = await find_workflow(svc, principal.project_id, call.target)
    if workflow is None or (call.by_name and workflow["name"] != call.target):
        raise errors.NotFound("Workflow not found")
    return workflow, None


async def _keep(svc: Services, row: DeliveryRow) -> None:
    """Write the call's delivery. A failure to write it is logged, never the caller's error:
    the run is recorded already, and the answer must say so."""
    try:
        await svc.store.insert_delivery(row)
    except Exception:
        log.exception("dialect.inbox_write_failed", extra={"run_id": row["run_id"]})


def _delivery(
    svc: Services,
    principal: Principal,
    call: DialectCall,
    workflow: WorkflowRow,
    trigger_id: str | None,
    *,
    run_id: str | None,
) -> DeliveryRow:
    secret = SECRET_HEADERS | call.extra_secret_headers
    headers: JSONObject = {}
    for name, value in call.arrival.headers:
        before = headers.get(name)
        shown = MASK if name in secret else value
        headers[name] = shown if before is None else f"{before}, {shown}"
    run = call.run
    run_start: JSONObject = {
        "input": run.input,
        "env": dict(run.env) if run.env else None,
        "stepEnv": {k: dict(v) for k, v in run.step_env.items()} if run.step_env else None,
    }
    return DeliveryRow(
        project_id=principal.project_id,
        id=ids.new_id("dlv"),
        trigger_id=trigger_id or workflow["id"],
        received_at=svc.clock.now(),
        method=call.arrival.method,
        path=call.arrival.path,
        query={"raw": call.arrival.query_string},
        headers=headers,
        body=call.arrival.body,
        verdict="accepted" if run_id is not None else "rejected",
        reason=None,
        run_id=run_id,
        signature_headers=None,
        replay_key=None,
        workflow_id=workflow["id"],
        source=call.source,
        run_start=run_start,
    )


async def list_workflow_deliveries(
    svc: Services, principal: Principal, workflow_ref: str, page: Page
) -> list[DeliveryRow]:
    """Every delivery for a workflow, webhooks and dialect calls, newest first."""
    principal.require("workflows:read")
    workflow = await _workflow(svc, principal, workflow_ref)
    return await svc.store.list_workflow_deliveries(principal.project_id, workflow["id"], page)


async def replay_dialect_delivery(
    svc: Services, principal: Principal, workflow_ref: str, delivery_id: str
) -> StartedRun:
    """Start a kept dialect call's run again, as translated when it arrived, with its dialect
    as the run's source. Raises NotFound, InvalidRequest (a webhook delivery: it is replayed
    through its trigger, whose secret checks it again) and whatever ``start_run`` raises."""
    principal.require("runs:write")
    workflow = await _workflow(svc, principal, workflow_ref)
    row = await svc.store.get_workflow_delivery(principal.project_id, workflow["id"], delivery_id)
    if row is None:
        raise errors.NotFound("Delivery not found")
    start = row["run_start"]
    if row["source"] in (None, "webhook") or start is None:
        raise errors.InvalidRequest(
            "A webhook delivery is replayed through its trigger: "
            f"POST /api/v1/triggers/{row['trigger_id']}/deliveries/{row['id']}/replay"
        )
    env, step_env = start.get("env"), start.get("stepEnv")
    command = StartRun(
        workflow=workflow["id"],
        input=start.get("input"),
        env=_strings(env) if isinstance(env, dict) else None,
        step_env=(
            {k: _strings(v) for k, v in step_env.items() if isinstance(v, dict)}
            if isinstance(step_env, dict)
            else None
        ),
        source=str(row["source"]),
    )
    return await start_run(svc, principal, command)


def _strings(values: JSONObject) -> dict[str, str]:
    return {name: value for name, value in values.items() if isinstance(value, str)}


async def _workflow(svc: Services, principal: Principal, ref: str) -> WorkflowRow:
    workflow = await find_workflow(svc, principal.project_id, ref)
    if workflow is None:
        raise errors.NotFound("Workflow not found")
    return workflow
