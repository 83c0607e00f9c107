"""``create_app``: the ASGI application, with its services started and stopped by the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from flowgate import __version__
from flowgate.api import dialects
from flowgate.api.errors import install_error_handlers
from flowgate.api.middleware import RequestMiddleware
from flowgate.api.responses import JSONResponse
from flowgate.api.routes import (
    connections,
    files,
    health,
    hooks,
    keys,
    projects,
    runs,
    streams,
    triggers,
    workflows,
)
from flowgate.service.core import Services, build_services, running
from flowgate.settings import Settings


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The server. Workers run inside it when ``settings.workers`` > 0."""
    svc = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(svc, workers=settings.workers):
            yield

    app = FastAPI(
        title="flowgate",
        version=__version__,
        description="Self-hosted, durable workflow automation.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # A path with a stray slash is a 404 in its API's shape, not a redirect built from the
        # request's Host header (which would repeat a Pinkfish webhook URL's key elsewhere).
        redirect_slashes=False,
    )
    app.state.services = svc
    install_error_handlers(app)
    modules = (
        health,
        workflows,
        triggers,
        hooks,
        files,
        runs,
        streams,
        keys,
        projects,
        connections,
    )
    for module in modules:
        app.include_router(module.router)
    for router in dialects.routers():
        app.include_router(router)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
