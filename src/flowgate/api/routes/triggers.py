"""``/api/v1/workflows/{id}/triggers`` and ``/api/v1/triggers/{id}``: ways to start a workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.body import parse_json
from flowgate.api.deps import ExecutingPrincipalDep, PrincipalDep, ServicesDep
from flowgate.api.models import TriggerPatch, TriggerRequest
from flowgate.api.responses import ok, page
from flowgate.service import dialects, webhooks
from flowgate.service import triggers as service
from flowgate.store.base import DeliveryRow, Page
from flowgate.types import JSON

router = APIRouter(prefix="/api/v1", tags=["triggers"])


@router.post("/workflows/{workflow_id}/triggers", status_code=201, summary="Add a trigger")
async def create_trigger(
    workflow_id: str,
    body: Annotated[TriggerRequest, Body()],
    svc: ServicesDep,
    who: PrincipalDep,
) -> Response:
    cmd = service.WriteTrigger(body=body.model_dump(by_alias=True, exclude_unset=True))
    created = await service.create_trigger(svc, who, workflow_id, cmd)
    return ok(views.trigger_out(created, created=True), status_code=201)


@router.get("/workflows/{workflow_id}/triggers", summary="A workflow's triggers")
async def list_triggers(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok([views.trigger_out(v) for v in await service.list_triggers(svc, who, workflow_id)])


@router.delete("/triggers/{trigger_id}", summary="Delete a trigger made through this API")
async def delete_trigger(trigger_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    await service.delete_trigger(svc, who, trigger_id)
    return ok({"id": trigger_id, "deleted": True})


@router.patch("/triggers/{trigger_id}", summary="Change a trigger (secret, style, enabled, …)")
async def update_trigger(
    trigger_id: str, body: Annotated[TriggerPatch, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    cmd = service.WriteTrigger(body=body.model_dump(by_alias=True, exclude_unset=True))
    updated = await service.update_trigger(svc, who, trigger_id, cmd)
    return ok(views.trigger_out(updated, created=updated.signing_secret is not None))


@router.get("/triggers/{trigger_id}/deliveries", summary="A webhook trigger's inbox")
async def list_deliveries(
    trigger_id: str,
    svc: ServicesDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    after = views.decode_cursor(cursor)
    rows = await webhooks.list_deliveries(svc, who, trigger_id, Page(limit=limit + 1, after=after))
    return _deliveries_page(rows, limit)


@router.get(
    "/workflows/{workflow_id}/deliveries",
    summary="A workflow's inbox: its webhook deliveries and dialect calls",
)
async def list_workflow_deliveries(
    workflow_id: str,
    svc: ServicesDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    after = views.decode_cursor(cursor)
    rows = await dialects.list_workflow_deliveries(
        svc, who, workflow_id, Page(limit=limit + 1, after=after)
    )
    return _deliveries_page(rows, limit)


@router.post(
    "/workflows/{workflow_id}/deliveries/{delivery_id}/replay",
    status_code=201,
    summary="Start a kept dialect call's run again",
)
async def replay_workflow_delivery(
    workflow_id: str, delivery_id: str, svc: ServicesDep, who: ExecutingPrincipalDep
) -> Response:
    started = await dialects.replay_dialect_delivery(svc, who, workflow_id, delivery_id)
    run = started.run
    return ok(views.started_run(run), status_code=201, headers={"X-Run-Id": run["id"]})


def _deliveries_page(rows: list[DeliveryRow], limit: int) -> Response:
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = views.encode_cursor(last["received_at"], last["id"])
    items: list[JSON] = [views.delivery_out(r) for r in rows[:limit]]
    return page(items, has_more=next_cursor is not None, next_cursor=next_cursor)


@router.post(
    "/triggers/{trigger_id}/deliveries/{delivery_id}/replay",
    status_code=201,
    summary="Re-drive a stored delivery through the signature check and start a run",
)
async def replay_delivery(
    trigger_id: str, delivery_id: str, svc: ServicesDep, who: ExecutingPrincipalDep
) -> Response:
    result = await webhooks.replay_delivery(
        svc, who, trigger_id, delivery_id, parse_json=parse_json
    )
    run = result.started.run
    return ok(views.started_run(run), status_code=201, headers={"X-Run-Id": run["id"]})
