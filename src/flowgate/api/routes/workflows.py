"""``/api/v1/workflows``: definitions (JSON or YAML), versions and status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.responses import ok, page
from flowgate.service import workflows as service
from flowgate.store.base import Page, WorkflowStatus

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])
Definition = Annotated[
    dict[str, Any],
    Body(description="A workflow definition (DESIGN §5), JSON or `application/yaml`."),
]


@router.post("", status_code=201, summary="Create a workflow")
async def create_workflow(body: Definition, svc: ServicesDep, who: PrincipalDep) -> Response:
    row = await service.create_workflow(svc, who, service.WriteWorkflow(body=body))
    return ok(views.workflow_out(row), status_code=201)


@router.get("", summary="List workflows")
async def list_workflows(
    svc: ServicesDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    rows = await service.list_workflows(
        svc, who, Page(limit=limit + 1, after=views.decode_cursor(cursor))
    )
    items, has_more, next_cursor = views.paged([views.workflow_out(r) for r in rows], rows, limit)
    return page(items, has_more=has_more, next_cursor=next_cursor)


@router.get("/{workflow_id}", summary="Get a workflow by id or exact name")
async def get_workflow(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok(views.workflow_out(await service.read_workflow(svc, who, workflow_id)))


@router.put("/{workflow_id}", summary="Replace a workflow's definition (a new version)")
async def update_workflow(
    workflow_id: str, body: Definition, svc: ServicesDep, who: PrincipalDep
) -> Response:
    row = await service.update_workflow(svc, who, workflow_id, service.WriteWorkflow(body=body))
    return ok(views.workflow_out(row))


@router.delete("/{workflow_id}", summary="Archive a workflow (its runs stay)")
async def delete_workflow(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    row = await service.set_workflow_status(svc, who, workflow_id, WorkflowStatus.ARCHIVED)
    return ok(views.workflow_out(row))


@router.post("/{workflow_id}/activate", summary="Make a workflow runnable")
async def activate(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    row = await service.set_workflow_status(svc, who, workflow_id, WorkflowStatus.ACTIVE)
    return ok(views.workflow_out(row))


@router.post("/{workflow_id}/pause", summary="Stop new runs of a workflow")
async def pause(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    row = await service.set_workflow_status(svc, who, workflow_id, WorkflowStatus.PAUSED)
    return ok(views.workflow_out(row))


@router.post("/{workflow_id}/archive", summary="Archive a workflow")
async def archive(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    row = await service.set_workflow_status(svc, who, workflow_id, WorkflowStatus.ARCHIVED)
    return ok(views.workflow_out(row))


@router.get("/{workflow_id}/versions", summary="Every version of a workflow, newest first")
async def versions(workflow_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    rows = await service.list_versions(svc, who, workflow_id)
    return ok([views.version_out(r) for r in rows])
