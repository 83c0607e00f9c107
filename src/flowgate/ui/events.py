"""The events page (`/ui/events`): waiting triggers, send and cancel.

It lists the project's waiting event triggers (newest first, paged by the ``requested_at``
cursor ``service.events.list_events`` hands out), and has two forms that call the functions the
Strait-style API calls (``send_event``, ``cancel_event``), so the same rules, limits and scopes
apply. A send or cancel answers with the page itself, saying what happened above the list; a
refused one keeps what was typed. A key without ``events:write`` gets the 403 error page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from flowgate import clock, errors, jsonvalue
from flowgate.api.body import parse_json
from flowgate.api.errors import status_of
from flowgate.service import events as event_service
from flowgate.statuses import EventStatus
from flowgate.store.base import EventFilter, EventTriggerRow
from flowgate.types import JSON
from flowgate.ui.pages import (
    PAGE_SIZE,
    FormField,
    Viewer,
    current_viewer,
    form_viewer,
    render,
    router,
    run_url,
    svc_of,
    to_login,
)

#: The request payload shown in a row is cut to this many characters of JSON.
PAYLOAD_PREVIEW_CHARS = 120
_NOT_JSON = "Request body is not valid JSON: "


@router.get("/events")
async def events_page(
    request: Request, cursor: str | None = None, key: str | None = None
) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    return await _page(request, viewer, cursor=_cursor(cursor), form_key=(key or "")[:512])


@router.post("/events/send")
async def send(
    request: Request,
    csrf: FormField = None,
    key: FormField = None,
    payload: FormField = None,
) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    svc = svc_of(request)
    event_key, text = key or "", payload or ""
    try:
        sent = await event_service.send_event(svc, found.principal, event_key, parse_payload(text))
    except (errors.InvalidRequest, errors.PayloadTooLarge, errors.Conflict) as exc:
        return await _refused(request, found, exc, key=event_key, payload=text)
    except errors.NotFound:
        problem = errors.NotFound(
            f"Nothing waits for {event_key!r}: no run or wait has used this key, and the event "
            "was not kept (this project keeps no early events). Check the key in the list below."
        )
        return await _refused(request, found, problem, key=event_key, payload=text)
    return await _page(request, found, outcome=_sent_outcome(event_key, sent))


@router.post("/events/cancel")
async def cancel(request: Request, csrf: FormField = None, key: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    event_key = key or ""
    try:
        trigger = await event_service.cancel_event(svc_of(request), found.principal, event_key)
    except (errors.InvalidRequest, errors.NotFound, errors.Conflict) as exc:
        return await _refused(request, found, exc, key="", payload="")
    outcome: dict[str, Any] = {"text": f"Canceled the wait on {event_key!r}."}
    if trigger["workflow_run_id"]:
        outcome |= {
            "text": f"Canceled the wait on {event_key!r}: its step is canceled and its run fails.",
            "run_id": trigger["workflow_run_id"],
            "run_url": run_url(trigger["workflow_run_id"]),
        }
    return await _page(request, found, outcome=outcome)


@router.get("/events/send")
@router.get("/events/cancel")
async def back_to_events() -> Response:
    """Where signing in again after a refused POST (expired session) lands: the page itself."""
    return RedirectResponse("/ui/events", status_code=303)


def parse_payload(text: str) -> JSON:
    """The form's payload: JSON, read as strictly as an API body; empty means ``null``.
    Raises InvalidRequest naming the problem."""
    if not text.strip():
        return None
    try:
        return parse_json(text.encode())
    except errors.InvalidRequest as exc:
        raise errors.InvalidRequest(
            f"Payload (JSON) is not valid JSON: {exc.message.removeprefix(_NOT_JSON)}"
        ) from exc


def _sent_outcome(key: str, sent: event_service.Sent) -> dict[str, Any]:
    trigger = sent.trigger
    if trigger is None:
        until = sent.buffered_until
        return {
            "text": f"Nothing waits for {key!r} yet: the event is kept until "
            f"{_absolute(until)} for the first wait on this key (the project's early-event "
            "buffer)."
            if until is not None
            else f"Nothing waits for {key!r} yet; the event is kept."
        }
    run_id = trigger["workflow_run_id"]
    if run_id:
        return {
            "text": f"Sent to {key!r}: the waiting step received the payload and its run resumes.",
            "run_id": run_id,
            "run_url": run_url(run_id),
        }
    return {"text": f"Sent to {key!r}: the standalone wait received the payload."}


async def _refused(
    request: Request, viewer: Viewer, exc: errors.FlowgateError, *, key: str, payload: str
) -> Response:
    return await _page(
        request,
        viewer,
        problem=exc.message,
        status_code=status_of(exc),
        form_key=key,
        form_payload=payload,
    )


async def _page(
    request: Request,
    viewer: Viewer,
    *,
    cursor: datetime | None = None,
    outcome: dict[str, Any] | None = None,
    problem: str | None = None,
    status_code: int = 200,
    form_key: str = "",
    form_payload: str = "",
) -> Response:
    svc = svc_of(request)
    rows, next_before = await event_service.list_events(
        svc,
        viewer.principal,
        EventFilter(statuses=(EventStatus.WAITING.value,)),
        limit=PAGE_SIZE,
        before=cursor,
    )
    now = svc.clock.now()
    return render(
        "events.html",
        status_code=status_code,
        title="Events" if cursor is None else "Events (older)",
        section="events",
        viewer=viewer,
        waits=[waiting_row(row, now) for row in rows],
        first_page=cursor is None,
        next_url=None
        if next_before is None
        else "/ui/events?" + urlencode({"cursor": clock.to_wire(next_before)}),
        outcome=outcome,
        problem=problem,
        form_key=form_key,
        form_payload=form_payload,
    )


def waiting_row(row: EventTriggerRow, now: datetime) -> dict[str, Any]:
    """What a row of the table shows of a waiting trigger."""
    run_id = row["workflow_run_id"]
    preview = None
    if row["request_payload"] is not None:
        text = jsonvalue.dumps(row["request_payload"]).decode()
        cut = len(text) > PAYLOAD_PREVIEW_CHARS
        preview = text[:PAYLOAD_PREVIEW_CHARS] + ("…" if cut else "")
    return {
        "id": row["id"],
        "key": row["event_key"],
        "send_url": "/ui/events?" + urlencode({"key": row["event_key"]}) + "#send",
        "run_id": run_id,
        "run_url": None if run_id is None else run_url(run_id),
        "source_type": row["source_type"],
        "requested_iso": clock.to_wire(row["requested_at"]),
        "requested_at": _absolute(row["requested_at"]),
        "age": relative(row["requested_at"], now),
        "expires_iso": clock.to_wire(row["expires_at"]),
        "expires_at": _absolute(row["expires_at"]),
        "expires_in": relative(row["expires_at"], now),
        "request_payload": preview,
    }


def relative(when: datetime, now: datetime) -> str:
    """``5 min ago`` or ``in 2 h 10 min``: two units at most."""
    seconds = int((when - now).total_seconds())
    if seconds == 0:
        return "just now"
    span = _span(abs(seconds))
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def _absolute(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cursor(raw: str | None) -> datetime | None:
    """The ``requested_at`` a page starts before (ISO 8601 with a zone). Raises InvalidRequest."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError("no time zone")
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidRequest(
            "invalid cursor format: follow the page's own Older link"
        ) from None
