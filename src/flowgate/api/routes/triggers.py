"""``/api/v1/workflows/{id}/triggers`` and ``/api/v1/triggers/{id}``: ways to start a workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.models import TriggerRequest
from flowgate.api.responses import ok
from flowgate.service import triggers as service

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
