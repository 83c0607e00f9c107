"""Live streams (Server-Sent Events): a run's changes and an event trigger's.

Included before the dialect routers, so ``/v1/events/{key}/stream`` is matched here before the
Strait dialect's ``/v1/events/{key}`` (whose key may hold ``/``).

A stream holds a change watch on the notifier (``engine/notifier.py``), fed in this process by
whoever commits a change and across processes by the store's ``listen`` (PostgreSQL NOTIFY). It
sleeps until woken, re-reads, and sends a frame only if what it shows changed; an idle stream
costs a keep-alive timer and a rare safety re-read (a signal lost with a connection is also
answered by ``wake_everything``). The watch is released when the generator ends: after the
last frame, or when the client goes away (sse-starlette cancels the generator).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from flowgate import errors, jsonvalue
from flowgate.api import views
from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.api.dialects.strait import event_out
from flowgate.engine.notifier import event_topic, run_topic
from flowgate.service import events as event_service
from flowgate.service import runs as run_service
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.statuses import EventStatus, RunStatus
from flowgate.store.base import EventTriggerRow
from flowgate.types import JSONObject

log = logging.getLogger(__name__)
router = APIRouter(tags=["streams"])

#: A ``: keepalive`` comment this often (DESIGN §6: 15 s), so proxies keep the connection open.
KEEPALIVE_SECS = 15.0
#: Re-read this often even without a signal: a safety net, not the way changes are seen.
SAFETY_REREAD_SECS = 300.0

_TERMINAL_EVENT = frozenset(s.value for s in EventStatus) - {EventStatus.WAITING.value}


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keepalive")


def _frame(event: str, data: JSONObject) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=jsonvalue.dumps_str(data))


def _response(frames: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    return EventSourceResponse(frames, ping=KEEPALIVE_SECS, ping_message_factory=_keepalive)


async def _watch(
    svc: Services,
    topics: list[str],
    read: Callable[[], Awaitable[tuple[str, JSONObject, bool]]],
) -> AsyncIterator[ServerSentEvent]:
    """Frames of ``read()`` (event name, data, final?): the current one, then one per change
    seen on waking, until a final one. The watch is taken before the first read, so no change
    falls between the read and the wait."""
    with svc.notifier.watch_changes(topics) as watch:
        try:
            last: JSONObject | None = None
            while True:
                event, data, final = await read()
                if data != last:
                    yield _frame(event, data)
                    last = data
                if final:
                    return
                await watch.wait(SAFETY_REREAD_SECS)
        except errors.FlowgateError:
            return  # gone meanwhile (a deleted run, a revoked key): nothing more to show
        except Exception:
            # The response has started: no error body can follow, so the stream just ends.
            log.exception("stream.failed", extra={"topics": sorted(topics)})


@router.get("/v1/events/{event_key:path}/stream", summary="Follow an event trigger (SSE)")
async def stream_event(event_key: str, svc: ServicesDep, who: PrincipalDep) -> EventSourceResponse:
    """``event: status`` frames with the trigger, the current one first, until it ends."""
    first = await event_service.get_event(svc, who, event_key)  # NotFound, InvalidRequest
    return _response(_event_frames(svc, first))


async def _event_frames(svc: Services, first: EventTriggerRow) -> AsyncIterator[ServerSentEvent]:
    project_id, trigger_id = first["project_id"], first["id"]
    topics = [event_topic(project_id, first["event_key"])]
    if first["workflow_run_id"] is not None:
        # A run's end ends its waits without an event announcement; its worker times them out.
        topics.append(run_topic(first["workflow_run_id"]))
    current = first

    async def read() -> tuple[str, JSONObject, bool]:
        nonlocal current
        # By id, not by key: a new wait on the same key must not hide how this one ended.
        rows = await svc.store.get_event_triggers(project_id, [trigger_id])
        current = rows[0] if rows else current
        return "status", event_out(current), current["status"] in _TERMINAL_EVENT

    async for frame in _watch(svc, topics, read):
        yield frame


@router.get("/api/v1/runs/{run_id}/stream", summary="Follow a run (SSE)")
async def stream_run(run_id: str, svc: ServicesDep, who: PrincipalDep) -> EventSourceResponse:
    """``event: run`` frames with the run as ``GET /api/v1/runs/{id}`` shows it, one per
    change, then ``event: end`` once it has ended."""
    await run_service.get_run(svc, who, run_id)  # NotFound ("Run not found")
    return _response(_run_frames(svc, who, run_id))


async def _run_frames(svc: Services, who: Principal, run_id: str) -> AsyncIterator[ServerSentEvent]:
    status = RunStatus.PENDING

    async def read() -> tuple[str, JSONObject, bool]:
        nonlocal status
        detail = await run_service.get_run(svc, who, run_id)
        status = RunStatus(detail.run["status"])
        return "run", views.run_detail(detail), status.is_terminal

    async for frame in _watch(svc, [run_topic(run_id)], read):
        yield frame
    if status.is_terminal:
        yield _frame("end", {"id": run_id, "status": status.value})
