"""Request dependencies: the process's ``Services`` and the calling key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flowgate.service.auth import Principal, authenticate
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def api_key_of(request: Request) -> str | None:
    """``x-api-key``, or ``Authorization: Bearer <key>``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def get_principal(
    request: Request, svc: Annotated[Services, Depends(get_services)]
) -> Principal:
    """The calling key, counted against its *read* rate limit."""
    return await authenticate(svc, api_key_of(request), Category.READ)


async def get_executing_principal(
    request: Request, svc: Annotated[Services, Depends(get_services)]
) -> Principal:
    """The calling key, counted against its *execute* rate limit (run starts, sends)."""
    return await authenticate(svc, api_key_of(request), Category.EXECUTE)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ExecutingPrincipalDep = Annotated[Principal, Depends(get_executing_principal)]
