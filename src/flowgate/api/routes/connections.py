"""``/api/v1/connections``: credentials go in, never come out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.models import ConnectionRequest
from flowgate.api.responses import ok
from flowgate.service import connections as service

router = APIRouter(prefix="/api/v1/connections", tags=["connections"])


def _command(body: ConnectionRequest) -> service.WriteConnection:
    return service.WriteConnection(
        id=body.id, name=body.name, type=body.type, config=body.config, credentials=body.credentials
    )


@router.post("", status_code=201, summary="Create a connection")
async def create_connection(
    body: Annotated[ConnectionRequest, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    row = await service.create_connection(svc, who, _command(body))
    return ok(views.connection_out(row), status_code=201)


@router.get("", summary="List connections (without credentials)")
async def list_connections(svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok([views.connection_out(row) for row in await service.list_connections(svc, who)])


@router.get("/{connection_id}", summary="One connection (without credentials)")
async def get_connection(connection_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok(views.connection_out(await service.get_connection(svc, who, connection_id)))


@router.patch("/{connection_id}", summary="Change a connection's name, config or credentials")
async def update_connection(
    connection_id: str,
    body: Annotated[ConnectionRequest, Body()],
    svc: ServicesDep,
    who: PrincipalDep,
) -> Response:
    row = await service.update_connection(svc, who, connection_id, _command(body))
    return ok(views.connection_out(row))


@router.delete("/{connection_id}", summary="Delete a connection")
async def delete_connection(connection_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    await service.delete_connection(svc, who, connection_id)
    return ok({"id": connection_id, "deleted": True})
