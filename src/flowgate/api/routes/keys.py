"""``/api/v1/keys``: create (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.models import KeyRequest
from flowgate.api.responses import ok
from flowgate.service import auth as service

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.post("", status_code=201, summary="Create an API key")
async def create_key(
    body: Annotated[KeyRequest, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    row, secret = await service.create_key(
        svc,
        who,
        service.CreateKey(
            name=body.name,
            scopes=body.scopes,
            project_id=body.project_id,
            expires_at=body.expires_at,
            rate_limit_per_minute=body.rate_limit_per_minute,
        ),
    )
    return ok(views.key_out(row, secret), status_code=201)


@router.get("", summary="List the project's API keys (never their secrets)")
async def list_keys(svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok([views.key_out(row) for row in await service.list_keys(svc, who)])


@router.delete("/{key_id}", summary="Revoke an API key")
async def revoke_key(key_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return ok(views.key_out(await service.revoke_key(svc, who, key_id)))
