"""``create_app``: the ASGI application, with its services started and stopped by the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from flowgate import __version__
from flowgate.api import dialects, openapi
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
from flowgate.ui import routes as ui


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The server. Workers run inside it when ``settings.workers`` > 0."""
    svc = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(svc, workers=settings.workers):
            yield

    # /docs (Swagger UI) and /redoc load their scripts and styles from files shipped in the
    # fastapi-offline package, not from a CDN: the docs work on a machine with no network.
    app = FastAPIOffline(
        title="flowgate",
        version=__version__,
        description=openapi.DESCRIPTION,
        static_url="/docs/static",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # A path with a stray slash is a 404 in its API's shape, not a redirect built from the
        # request's Host header (which would repeat a Pinkfish webhook URL's key elsewhere).
        redirect_slashes=False,
    )
    app.state.services = svc
    install_error_handlers(app)
    # Routes are matched in order, one regex each: the hot paths (starting runs, webhooks) first.
    modules = (
        health,
        runs,
        hooks,
        workflows,
        triggers,
        files,
        streams,
        keys,
        projects,
        connections,
    )
    for module in modules:
        app.include_router(module.router)
    for router in dialects.routers():
        app.include_router(router)
    ui.mount(app)  # the runs monitor at /ui
    openapi.install(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
