"""``/api/v1/projects``: the default project's admin administers them all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.models import ProjectPatch, ProjectRequest
from flowgate.api.responses import ok
from flowgate.service import projects as service

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.post("", status_code=201, summary="Create a project")
async def create_project(
    body: Annotated[ProjectRequest, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    row = await service.create_project(
        svc, who, name=body.name, org_id=body.org_id, project_id=body.id
    )
    return ok(views.project_out(row), status_code=201)


@router.get("", summary="Projects this key can see")
async def list_projects(svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok([views.project_out(row) for row in await service.list_projects(svc, who)])


@router.get("/{project_id}", summary="One project")
async def get_project(project_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok(views.project_out(await service.get_project(svc, who, project_id)))


@router.patch(
    "/{project_id}",
    summary="Rename a project or set its runQuotaPerDay and eventBufferSecs (null: none)",
)
async def update_project(
    project_id: str, body: Annotated[ProjectPatch, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    sent = body.model_fields_set
    settings = service.ProjectSettings()
    if "run_quota_per_day" in sent:
        settings["run_quota_per_day"] = body.run_quota_per_day
    if "event_buffer_secs" in sent:
        settings["event_buffer_secs"] = body.event_buffer_secs
    row = await service.update_project(svc, who, project_id, name=body.name, settings=settings)
    return ok(views.project_out(row))
