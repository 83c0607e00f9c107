"""The front door (`/` leads to the monitor), liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from flowgate.api.deps import ServicesDep
from flowgate.api.responses import JSONResponse
from flowgate.engine import metrics

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
#: The database gauges are cached this long: frequent scrapes (or several scrapers) cost one
#: round of indexed counts per interval.
_GAUGE_CACHE_SECS = 2.0
_PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/", include_in_schema=False)
async def front_door() -> Response:
    """A browser pointed at the server lands in the runs monitor (its sign-in when signed out)."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The database answers")
async def readyz(svc: ServicesDep) -> Response:
    try:
        await svc.store.ping()
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


#: Left out of the OpenAPI document (like ``/docs``): Prometheus text, not a JSON API.
@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, svc: ServicesDep) -> Response:
    snapshot = await _queue_snapshot(request, svc)
    return Response(metrics.render(snapshot), media_type=_PROMETHEUS_TYPE)


async def _queue_snapshot(request: Request, svc: ServicesDep) -> metrics.QueueSnapshot | None:
    """The database gauges, read at most every ``_GAUGE_CACHE_SECS`` per app; None (gauges
    left out, counters still served) when the database does not answer."""
    cached: tuple[float, metrics.QueueSnapshot] | None = getattr(
        request.app.state, "metrics_snapshot", None
    )
    if cached is not None and time.monotonic() - cached[0] < _GAUGE_CACHE_SECS:
        return cached[1]
    try:
        runs, waiting = await svc.store.queue_stats()
    except Exception:
        log.warning("metrics.database_unavailable")
        return None
    now = svc.clock.now()
    snapshot = metrics.QueueSnapshot(
        counts={status: runs.get(status, (0, None))[0] for status in ("queued", "pending")},
        oldest_age_secs={
            status: max(0.0, (now - oldest).total_seconds())
            for status, (_count, oldest) in runs.items()
            if oldest is not None
        },
        waiting_event_triggers=waiting,
    )
    request.app.state.metrics_snapshot = (time.monotonic(), snapshot)
    return snapshot
