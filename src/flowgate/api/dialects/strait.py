"""Strait-style events (DESIGN §6, seed ``004_…``): ``/v1/events…``, snake_case objects with
every key present, and Strait's error body ``{"error": {"code", "message", "details"?},
"request_id"}``. Keys come as on the native API (``x-api-key`` or ``Authorization: Bearer``);
reads need ``runs:read``, everything that changes a trigger ``events:write``.

Keys may hold ``/``: the routes take the rest of the path, the specific ones (``stats``,
``prefix/…/send``, ``…/send``) registered before the plain ``/v1/events/{key}``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from flowgate import clock, errors
from flowgate.api.body import parse_json
from flowgate.api.deps import ExecutingPrincipalDep, PrincipalDep, ServicesDep
from flowgate.api.errors import rate_limit_headers, register_error_shape, status_of
from flowgate.api.responses import JSONResponse
from flowgate.api.routes.hooks import read_body
from flowgate.service import events as service
from flowgate.service.auth import Principal
from flowgate.statuses import EventStatus
from flowgate.store.base import EventFilter, EventTriggerRow
from flowgate.types import JSON, JSONObject

router = APIRouter(prefix="/v1/events", tags=["events"])

_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
    500: "internal_error",
}


def render_error(exc: errors.FlowgateError, request_id: str) -> Response:
    status = status_of(exc)
    error: dict[str, object] = {"code": _CODES.get(status, "bad_request"), "message": exc.message}
    if exc.details is not None:
        error["details"] = exc.details
    return JSONResponse(
        {"error": error, "request_id": request_id},
        status_code=status,
        headers=rate_limit_headers(exc),
    )


register_error_shape("/v1/", render_error)


def event_out(row: EventTriggerRow) -> JSONObject:
    """An event trigger as Strait shows it: every key, absent values ``null``."""
    return {
        "id": row["id"],
        "event_key": row["event_key"],
        "project_id": row["project_id"],
        "source_type": row["source_type"],
        "workflow_run_id": row["workflow_run_id"],
        "workflow_step_run_id": row["workflow_step_run_id"],
        "job_run_id": row["job_run_id"],
        "status": row["status"],
        "request_payload": row["request_payload"],
        "response_payload": row["response_payload"],
        "timeout_secs": _number(row["timeout_secs"]),
        "requested_at": clock.to_wire(row["requested_at"]),
        "received_at": clock.to_wire(row["received_at"]),
        "expires_at": clock.to_wire(row["expires_at"]),
        "error": row["error"],
        "sent_by": row["sent_by"],
    }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


async def _body(request: Request, svc: ServicesDep) -> dict[str, Any]:
    """The JSON object sent (empty: ``{}``); Strait's bodies are objects."""
    raw = await read_body(request, svc.settings.max_body_bytes)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The request body must be a JSON object")
    return body


def _own_project(principal: Principal, project_id: str | None) -> None:
    if project_id is not None and project_id != principal.project_id:
        raise errors.NotFound("project not found")


_DIGITS = re.compile(r"[0-9]+")
# RFC 3339 with a time zone (what ``next_cursor`` holds), not every form ``fromisoformat`` reads.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _limit(raw: str | None) -> int:
    """Plain ASCII digits only: ``int()`` would also take `` 5``, ``1_0`` and other scripts'
    digits. A huge one is clamped, never converted past what it needs."""
    if raw is None:
        return 50
    digits = raw.lstrip("0")
    if not _DIGITS.fullmatch(raw) or not digits:
        raise errors.InvalidRequest("limit must be a positive integer")
    return service.MAX_LIST_LIMIT if len(digits) > 3 else min(int(digits), service.MAX_LIST_LIMIT)


def _cursor(raw: str | None) -> datetime | None:
    """An RFC 3339 instant; empty means the first page, like no cursor."""
    if not raw:
        return None
    if not _RFC3339.fullmatch(raw):
        raise errors.InvalidRequest("invalid cursor format")
    text = raw.replace("Z", "+00:00").replace("z", "+00:00").replace("t", "T")
    # ``fromisoformat`` of Python 3.11 reads at most microseconds.
    text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise errors.InvalidRequest("invalid cursor format") from exc


@router.get("", summary="List event triggers, newest first")
async def list_events(
    svc: ServicesDep,
    who: PrincipalDep,
    project_id: str | None = None,
    status: str | None = None,
    workflow_run_id: str | None = None,
    source_type: str | None = None,
    limit: Annotated[str | None, Query()] = None,
    cursor: str | None = None,
) -> Response:
    _own_project(who, project_id)
    if status is not None and status not in {s.value for s in EventStatus}:
        raise errors.InvalidRequest(f"invalid status: {status}")
    if source_type is not None and source_type not in service.SOURCE_TYPES:
        raise errors.InvalidRequest(f"invalid source_type: {source_type}")
    where = EventFilter(
        statuses=(status,) if status else (),
        workflow_run_id=workflow_run_id,
        source_type=source_type,
    )
    rows, next_before = await service.list_events(
        svc, who, where, limit=_limit(limit), before=_cursor(cursor)
    )
    return JSONResponse(
        {
            "data": [event_out(row) for row in rows],
            "has_more": next_before is not None,
            "next_cursor": clock.to_wire(next_before),
        }
    )


@router.get("/stats", summary="Counts of the project's event triggers per status")
async def stats(svc: ServicesDep, who: PrincipalDep) -> Response:
    return JSONResponse(await service.event_stats(svc, who))


@router.post("", status_code=201, summary="Create a standalone wait (a job_run trigger)")
async def create_wait(request: Request, svc: ServicesDep, who: ExecutingPrincipalDep) -> Response:
    who.require("events:write")  # before the body: a key without the scope learns nothing more
    body = await _body(request, svc)
    key = body.get("event_key")
    if not isinstance(key, str):
        raise errors.InvalidRequest("event_key is required")
    timeout = body.get("timeout_secs")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        raise errors.InvalidRequest("timeout_secs must be a number of seconds")
    row = await service.create_wait(
        svc, who, key, timeout_secs=float(timeout), request_payload=body.get("request_payload")
    )
    return JSONResponse(event_out(row), status_code=201)


@router.post("/purge", summary="Delete ended event triggers older than a number of days")
async def purge(request: Request, svc: ServicesDep, who: ExecutingPrincipalDep) -> Response:
    who.require("events:write")
    body = await _body(request, svc)
    days = body.get("older_than_days")
    if not isinstance(days, int) or isinstance(days, bool):
        raise errors.InvalidRequest("older_than_days must be >= 1")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise errors.InvalidRequest("dry_run must be true or false")
    count = await service.purge_events(svc, who, older_than_days=days, dry_run=dry_run)
    return JSONResponse(
        {
            "deleted": 0 if dry_run else count,
            "dry_run": dry_run,
            "would_delete": count if dry_run else 0,
        }
    )


@router.post("/prefix/{prefix:path}/send", summary="Send an event to every key with a prefix")
async def send_prefix(
    prefix: str, request: Request, svc: ServicesDep, who: ExecutingPrincipalDep
) -> Response:
    payload = _payload(await _body(request, svc))
    resolved = await service.send_by_prefix(svc, who, prefix, payload)
    return JSONResponse({"resolved": len(resolved), "triggers": [event_out(r) for r in resolved]})


@router.post("/{event_key:path}/send", summary="Send an event to a waiting trigger")
async def send(
    event_key: str,
    request: Request,
    svc: ServicesDep,
    who: ExecutingPrincipalDep,
    buffer_secs: Annotated[float | None, Query()] = None,
) -> Response:
    payload = _payload(await _body(request, svc))
    sent = await service.send_event(
        svc,
        who,
        event_key,
        payload,
        buffer_secs=buffer_secs,
        idempotency_key=request.headers.get("idempotency-key") or None,
    )
    if sent.trigger is None:
        return JSONResponse(
            {
                "buffered": True,
                "event_key": event_key,
                "expires_at": clock.to_wire(sent.buffered_until),
            },
            status_code=202,
        )
    return JSONResponse(event_out(sent.trigger))


def _payload(body: dict[str, Any]) -> JSON:
    payload: JSON = body.get("payload")
    return payload


@router.get("/{event_key:path}", summary="An event trigger by its key")
async def get_event(event_key: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    return JSONResponse(event_out(await service.get_event(svc, who, event_key)))


@router.delete("/{event_key:path}", summary="Cancel a waiting event trigger")
async def cancel(event_key: str, svc: ServicesDep, who: ExecutingPrincipalDep) -> Response:
    return JSONResponse(event_out(await service.cancel_event(svc, who, event_key)))
