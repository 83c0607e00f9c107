"""The runs list (``/ui/runs``) and a run's page (``/ui/runs/{runId}``, the link Axiom's answer
carries): filters, counts per status, bulk cancel and replay, the step timeline, and live
updates over Server-Sent Events.

Live updates reuse the notifier's change signals (``engine/notifier.py``): a run page watches
its run's topic; the list watches the topics of the project's unfinished runs (a status change
of a run that has ended cannot happen) plus "new work", which every new run announces. A stream
only says "changed" (at most once per ``COALESCE_SECS``); the page then re-fetches its fragment,
which checks the session like any page. No stream reads the database in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import ImmutableMultiDict

from flowgate import errors
from flowgate.api import views
from flowgate.engine.notifier import ChangeWatch, run_topic
from flowgate.service import events as event_service
from flowgate.service import runs as run_service
from flowgate.service.core import Services
from flowgate.service.workflows import find_workflow
from flowgate.statuses import EventStatus, RunStatus
from flowgate.store.base import (
    INPUT_KEY,
    INPUT_PATH_MAX_DEPTH,
    EventFilter,
    InputEquals,
    Page,
    RunFilter,
    RunRow,
    StepRunRow,
)
from flowgate.ui.pages import (
    PAGE_SIZE,
    FormField,
    Viewer,
    current_viewer,
    form_viewer,
    ms,
    pretty,
    render,
    router,
    run_row,
    run_url,
    svc_of,
    to_login,
)

#: A live stream sends "changed" at most this often: a burst of changes is one re-fetch.
COALESCE_SECS = 0.5
#: A ``: keepalive`` comment this often, so proxies keep an idle stream open.
KEEPALIVE_SECS = 15.0
#: Without a signal, a stream re-reads what it watches this often (a safety net only).
SAFETY_REREAD_SECS = 300.0
#: The list watches at most this many unfinished runs; beyond, it also refreshes this often.
LIVE_WATCH_LIMIT = 1000
CROWDED_REFRESH_SECS = 10.0
CHILDREN_SHOWN = 50
WAITS_SHOWN = 20
#: Pretty JSON longer than this is shown escaped but not highlighted (a span per token costs).
HIGHLIGHT_MAX_CHARS = 200_000
_INT64 = 2**63

# --- the runs list ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilters:
    """A list's filters: as typed (to show them again and build links) and as a RunFilter."""

    fields: dict[str, str]
    statuses: list[str]
    where: RunFilter

    def params(self, *, statuses: Sequence[str] | None = None) -> list[tuple[str, str]]:
        chosen = self.statuses if statuses is None else statuses
        pairs = [(name, value) for name, value in self.fields.items() if value]
        return pairs + [("status", s) for s in chosen]

    def query(self, **extra: str) -> str:
        return urlencode(self.params() + [(k, v) for k, v in extra.items() if v])


#: Query parameters or a form's fields: the bulk forms carry the list's filters.
_Params = ImmutableMultiDict[str, Any]


_FILTER_FIELDS = ("workflowId", "source", "createdAfter", "createdBefore", "input")


async def _filters(svc: Services, viewer: Viewer, params: _Params) -> ListFilters:
    """Raises InvalidRequest with a message the page shows."""
    fields = {name: _text(params, name) for name in _FILTER_FIELDS}
    statuses = run_service.parse_statuses(
        [v for v in params.getlist("status") if isinstance(v, str)]
    )
    source = fields["source"] or None
    if source is not None and source not in run_service.SOURCES:
        raise errors.InvalidRequest(
            f"Unknown source {source!r}; one of {', '.join(run_service.SOURCES)}"
        )
    workflow_id = fields["workflowId"] or None
    if workflow_id is not None:
        found = await find_workflow(svc, viewer.principal.project_id, workflow_id)
        workflow_id = found["id"] if found else workflow_id
    after = parse_time(fields["createdAfter"], "Created after")
    before = parse_time(fields["createdBefore"], "Created before")
    if after is not None and before is not None and after >= before:
        raise errors.InvalidRequest("Created after must be earlier than created before")
    where = RunFilter(
        workflow_id=workflow_id,
        statuses=statuses,
        source=source,
        created_after=after,
        created_before=before,
        input_equals=parse_input_filter(fields["input"]) if fields["input"] else None,
    )
    return ListFilters(fields=fields, statuses=statuses, where=where)


def _text(params: _Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > 1000:
        raise errors.InvalidRequest(f"{name} is too long (at most 1000 characters)")
    if _CONTROL.search(value):  # PostgreSQL cannot even compare text holding NUL
        raise errors.InvalidRequest(f"{name} holds a control character")
    return value.strip()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def parse_time(raw: str, label: str) -> datetime | None:
    """``2026-11-30T17:42`` (the browser's date-time field; read as UTC) or ISO 8601 with a
    ``Z`` or an offset. Raises InvalidRequest."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        raise errors.InvalidRequest(
            f"{label}: {raw!r} is not a date and time; write it as 2026-11-30T17:42 (UTC) "
            "or with an offset, like 2026-11-30T17:42:00Z"
        ) from None


_INPUT_FILTER_HELP = (
    'write it as input.customerId = c1: "input", a dotted path of keys (letters, digits, '
    f'"_" or "-"; at most {INPUT_PATH_MAX_DEPTH}), "=", and a value (text, a number, true or '
    'false, or "quoted text" to match text only)'
)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def parse_input_filter(raw: str) -> InputEquals:
    """``input.customerId = c1`` → InputEquals. A bare number or boolean also matches the same
    text stored as a string. Raises InvalidRequest naming what is wrong."""
    left, equals, right = raw.partition("=")
    left, right = left.strip(), right.strip()
    if not equals or not left.startswith("input."):
        raise errors.InvalidRequest(f"Input filter: {_INPUT_FILTER_HELP}")
    keys = tuple(key.strip() for key in left.removeprefix("input.").split("."))
    if len(keys) > INPUT_PATH_MAX_DEPTH:
        raise errors.InvalidRequest(
            f"Input filter: the path is {len(keys)} keys deep; at most {INPUT_PATH_MAX_DEPTH}"
        )
    bad = next((key for key in keys if not INPUT_KEY.fullmatch(key)), None)
    if bad is not None:
        raise errors.InvalidRequest(f"Input filter: {bad!r} is not a key; {_INPUT_FILTER_HELP}")
    if not right:
        raise errors.InvalidRequest(f"Input filter: the value is missing; {_INPUT_FILTER_HELP}")
    return InputEquals(path=keys, **_input_value(right))


def _input_value(raw: str) -> dict[str, Any]:
    if raw.startswith('"'):
        try:
            text = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = None
        if not isinstance(text, str):
            raise errors.InvalidRequest(
                'Input filter: a quoted value must be one JSON string, like "c1"'
            )
        return {"value": text}
    if raw in ("true", "false"):
        return {"value": raw == "true", "also_text": raw}
    if _NUMBER.fullmatch(raw):
        number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if isinstance(number, int) and not -_INT64 <= number < _INT64:
            raise errors.InvalidRequest("Input filter: the number is too large")
        if isinstance(number, float) and not math.isfinite(number):
            raise errors.InvalidRequest("Input filter: the number is too large")
        return {"value": number, "also_text": raw}
    return {"value": raw}


@router.get("/runs")
async def runs_page(request: Request) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    svc = svc_of(request)
    query = request.query_params
    run_id = _text(query, "runId")
    if run_id:
        found = await run_service.find_run(svc, viewer.principal, run_id)
        if found is not None:
            return RedirectResponse(run_url(found["id"]), status_code=303)
    try:
        filters = await _filters(svc, viewer, query)
    except errors.InvalidRequest as exc:
        return _list_page(viewer, None, fields=_raw_fields(query), problem=exc.message, status=400)
    listing = await _listing(request, viewer, filters)
    problem = f"No run {run_id!r} in this project" if run_id else None
    return _list_page(
        viewer,
        listing,
        fields=filters.fields,
        problem=problem,
        notice=_bulk_notice(query),
        status=404 if problem else 200,
    )


@router.get("/runs/table")
async def runs_table(request: Request) -> Response:
    """The live part of the list (counts, rows, pages): what the page re-fetches on a change."""
    viewer = await current_viewer(request)
    if viewer is None:
        return _signed_out_fragment(request, "/ui/runs")
    filters = await _filters(svc_of(request), viewer, request.query_params)
    return render("runs_table.html", **await _listing(request, viewer, filters))


async def _listing(request: Request, viewer: Viewer, filters: ListFilters) -> dict[str, Any]:
    svc = svc_of(request)
    cursor = request.query_params.get("cursor") or None
    after = views.decode_cursor(cursor)
    # Side by side: each may scan (an input filter reads JSON), and the page waits for both.
    rows, counts = await asyncio.gather(
        run_service.list_runs(
            svc, viewer.principal, filters.where, Page(limit=PAGE_SIZE + 1, after=after)
        ),
        run_service.count_runs_by_status(
            svc, viewer.principal, replace(filters.where, statuses=())
        ),
    )
    shown = rows[:PAGE_SIZE]
    next_url = None
    if len(rows) > PAGE_SIZE:
        last = shown[-1]
        next_url = "/ui/runs?" + filters.query(
            cursor=views.encode_cursor(last["created_at"], last["id"])
        )
    return {
        "runs": [run_row(run) for run in shown],
        "filters": filters,
        "counts": _status_counts(filters, counts),
        "total": sum(counts.values()),
        "all_url": _list_url(filters.params(statuses=())),
        "next_url": next_url,
        "first_url": _list_url(filters.params()) if cursor else None,
        "live": cursor is None,
        "table_url": _list_url(filters.params(), "/ui/runs/table"),
    }


def _list_url(params: list[tuple[str, str]], path: str = "/ui/runs") -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _status_counts(filters: ListFilters, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "status": status.value,
            "count": counts.get(status.value, 0),
            "url": _list_url(filters.params(statuses=[status.value])),
            "current": filters.statuses == [status.value],
        }
        for status in RunStatus
    ]


def _list_page(
    viewer: Viewer,
    listing: dict[str, Any] | None,
    *,
    fields: dict[str, str],
    problem: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    filters: ListFilters | None = None if listing is None else listing["filters"]
    title = "Runs"
    if filters is not None and filters.statuses:
        title += " · " + ", ".join(filters.statuses)
    if fields.get("workflowId"):
        title += f" · {fields['workflowId']}"
    return render(
        "runs.html",
        status_code=status,
        title=title,
        section="runs",
        viewer=viewer,
        fields=fields,
        chosen_statuses=[] if filters is None else filters.statuses,
        all_statuses=[s.value for s in RunStatus],
        sources=run_service.SOURCES,
        listing=listing,
        **(listing or {}),
        problem=problem,
        notice=notice,
    )


def _raw_fields(params: _Params) -> dict[str, str]:
    raw = {name: params.get(name) for name in _FILTER_FIELDS}
    return {name: value[:1000] if isinstance(value, str) else "" for name, value in raw.items()}


def _bulk_notice(params: _Params) -> str | None:
    """The outcome of a bulk action, named by a fixed word and a count (never free text)."""
    done, count = params.get("done"), params.get("count")
    if not isinstance(count, str) or not count.isdigit() or len(count) > 7:
        return None
    noun = "run" if count == "1" else "runs"
    if done == "cancel":
        return f"Canceled {count} {noun}."
    if done == "replay":
        return f"Started {count} {noun} as replays."
    return None


# --- bulk actions -------------------------------------------------------------------------------

_BULK = {"cancel": "Cancel", "replay": "Replay"}


@router.get("/runs/bulk/{action}")
async def bulk_confirm(request: Request, action: str) -> Response:
    """ "Cancel 12 runs?": the dry run's count, and a form that does it."""
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    verb = _bulk_verb(action)
    svc = svc_of(request)
    filters = await _filters(svc, viewer, request.query_params)
    bulk = run_service.cancel_runs if action == "cancel" else run_service.replay_runs
    result = await bulk(svc, viewer.principal, filters.where, dry_run=True)
    return render(
        "runs_confirm.html",
        title=(
            f"{verb} {result.matched} {'run' if result.matched == 1 else 'runs'}?"
            if result.matched
            else f"Nothing to {action}"
        ),
        section="runs",
        viewer=viewer,
        action=action,
        verb=verb,
        matched=result.matched,
        limit=run_service.BULK_LIMIT,
        hidden=filters.params(),
        back_url=_list_url(filters.params()),
    )


@router.post("/runs/bulk/{action}")
async def bulk_do(request: Request, action: str) -> Response:
    form = await request.form()
    csrf = form.get("csrf")
    found = await form_viewer(request, csrf if isinstance(csrf, str) else None)
    if isinstance(found, RedirectResponse):
        return found
    _bulk_verb(action)
    svc = svc_of(request)
    filters = await _filters(svc, found, form)
    if action == "cancel":
        result = await run_service.cancel_runs(svc, found.principal, filters.where, dry_run=False)
        target = filters.query(done="cancel", count=str(len(result.run_ids)))
    else:
        result = await run_service.replay_runs(svc, found.principal, filters.where, dry_run=False)
        target = urlencode({"source": "replay", "done": "replay", "count": len(result.run_ids)})
    return RedirectResponse(f"/ui/runs?{target}", status_code=303)


def _bulk_verb(action: str) -> str:
    verb = _BULK.get(action)
    if verb is None:
        raise errors.NotFound("No such bulk action; cancel or replay")
    return verb


# --- live updates -------------------------------------------------------------------------------


class _WorkSignal:
    """Fans the notifier's "new work" (every new run says so, in this process or another) out
    to the list streams of this app; registered with the notifier once per app."""

    def __init__(self) -> None:
        self._events: set[asyncio.Event] = set()

    def notify(self) -> None:
        for event in self._events:
            event.set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.add(event)
        try:
            yield event
        finally:
            self._events.discard(event)


def _work_signal(request: Request) -> _WorkSignal:
    signal: _WorkSignal | None = getattr(request.app.state, "ui_work_signal", None)
    if signal is None:
        signal = _WorkSignal()
        svc_of(request).notifier.on_runs_created(signal.notify)
        request.app.state.ui_work_signal = signal
    return signal


def _changed() -> ServerSentEvent:
    return ServerSentEvent(event="changed", data="changed")


def _stream(frames: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    return EventSourceResponse(
        frames,
        ping=KEEPALIVE_SECS,
        ping_message_factory=lambda: ServerSentEvent(comment="keepalive"),
        headers={"Cache-Control": "no-store"},
    )


def _refused_stream() -> Response:
    return PlainTextResponse("Sign in to follow live updates", status_code=401)


@router.get("/runs/live")
async def runs_live(request: Request) -> Response:
    """``event: changed`` whenever runs of the viewer's project may have changed: once at the
    start (the page may be older than the stream), then at most once per COALESCE_SECS."""
    viewer = await current_viewer(request)
    if viewer is None:
        return _refused_stream()
    await run_service.unfinished_run_ids(svc_of(request), viewer.principal, limit=1)  # Forbidden
    return _stream(_project_changes(svc_of(request), viewer, _work_signal(request)))


async def _project_changes(
    svc: Services, viewer: Viewer, signal: _WorkSignal
) -> AsyncIterator[ServerSentEvent]:
    """Watch the unfinished runs' topics and new work. Before each frame the watched runs are
    read again and the new watch taken, so whatever changes after the page's re-fetch could
    have seen it wakes this stream again: a run that had not ended then is watched, a run
    created since announces new work."""
    loop = asyncio.get_running_loop()
    watch: ChangeWatch | None = None
    crowded, sent_at = False, 0.0
    with signal.subscribe() as new_work:
        try:
            while True:
                changed = True
                if watch is not None:
                    timeout = CROWDED_REFRESH_SECS if crowded else SAFETY_REREAD_SECS
                    changed = await _first_change(watch, new_work, timeout) or crowded
                    if changed:
                        await asyncio.sleep(max(0.0, sent_at + COALESCE_SECS - loop.time()))
                new_work.clear()
                ids = await run_service.unfinished_run_ids(
                    svc, viewer.principal, limit=LIVE_WATCH_LIMIT
                )
                crowded = len(ids) >= LIVE_WATCH_LIMIT
                fresh = svc.notifier.watch_changes(map(run_topic, ids))
                if watch is not None:
                    watch.__exit__(None, None, None)
                watch = fresh
                if changed:
                    yield _changed()
                    sent_at = loop.time()
        finally:
            if watch is not None:
                watch.__exit__(None, None, None)


async def _first_change(watch: ChangeWatch, event: asyncio.Event, seconds: float) -> bool:
    """True when ``watch`` or ``event`` fires within ``seconds``."""
    waiters = [asyncio.ensure_future(watch.wait(seconds)), asyncio.ensure_future(event.wait())]
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return any(task.result() for task in done)
    finally:
        for task in waiters:
            task.cancel()


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: str) -> Response:
    """``event: changed`` on each change of the run (at most once per COALESCE_SECS; once at
    the start), then ``event: end`` once it has ended, and the stream closes."""
    viewer = await current_viewer(request)
    if viewer is None:
        return _refused_stream()
    svc = svc_of(request)
    if await run_service.find_run(svc, viewer.principal, run_id) is None:
        raise errors.NotFound("Run not found")
    return _stream(_run_changes(svc, viewer, run_id))


async def _run_changes(
    svc: Services, viewer: Viewer, run_id: str
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    with svc.notifier.watch_changes([run_topic(run_id)]) as watch:
        while True:
            sent_at = loop.time()
            run = await run_service.find_run(svc, viewer.principal, run_id)
            yield _changed()
            if run is None or RunStatus(run["status"]).is_terminal:
                yield ServerSentEvent(event="end", data=run_id)
                return
            await watch.wait(SAFETY_REREAD_SECS)
            await asyncio.sleep(max(0.0, sent_at + COALESCE_SECS - loop.time()))


def _signed_out_fragment(request: Request, fallback: str) -> Response:
    """A fragment asked for after the session ended: htmx follows ``HX-Redirect`` to sign-in."""
    target = request.headers.get("HX-Current-URL") or fallback
    path = target.split("/ui/", 1)[-1] if "/ui/" in target else ""
    return Response(
        status_code=204,
        headers={"HX-Redirect": f"/ui/login?next={quote('/ui/' + path, safe='')}"},
    )


# --- a run's page -------------------------------------------------------------------------------


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    return await _run_response(request, viewer, run_id, notice=None)


@router.get("/runs/{run_id}/body")
async def run_body(request: Request, run_id: str) -> Response:
    """The live part of a run's page: what it re-fetches when the run changes."""
    viewer = await current_viewer(request)
    if viewer is None:
        return _signed_out_fragment(request, run_url(run_id))
    context = await _run_context(request, viewer, run_id)
    return render("run_body.html", **context)


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, csrf: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    try:
        await run_service.cancel_run(svc_of(request), found.principal, run_id)
    except errors.Conflict as exc:
        return await _run_response(request, found, run_id, notice=exc.message, status_code=409)
    return RedirectResponse(run_url(run_id), status_code=303)


@router.post("/runs/{run_id}/replay")
async def replay(request: Request, run_id: str, csrf: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    started = await run_service.replay_run(svc_of(request), found.principal, run_id)
    return RedirectResponse(run_url(started.run["id"]), status_code=303)


@router.post("/runs/{run_id}/rerun")
async def rerun(request: Request, run_id: str, csrf: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    try:
        started = await run_service.rerun_run(svc_of(request), found.principal, run_id)
    except errors.Conflict as exc:
        return await _run_response(request, found, run_id, notice=exc.message, status_code=409)
    return RedirectResponse(run_url(started.run["id"]), status_code=303)


async def _run_response(
    request: Request, viewer: Viewer, run_id: str, *, notice: str | None, status_code: int = 200
) -> Response:
    context = await _run_context(request, viewer, run_id)
    wire = context["wire"]
    return render(
        "run.html",
        status_code=status_code,
        title=f"Run {run_id}",
        section="runs",
        notice=notice,
        input=highlight(wire["input"]),
        env=highlight(wire["env"]),
        step_env=None if wire["stepEnv"] is None else highlight(wire["stepEnv"]),
        **context,
    )


async def _run_context(request: Request, viewer: Viewer, run_id: str) -> dict[str, Any]:
    svc = svc_of(request)
    detail = await run_service.get_run(svc, viewer.principal, run_id)  # NotFound
    run = detail.run
    wire = views.run_detail(detail)
    steps = (
        [s for s in wire["steps"] if isinstance(s, dict)] if isinstance(wire["steps"], list) else []
    )
    attempts = await run_service.step_attempts(svc, viewer.principal, run)
    children = await run_service.child_runs(svc, viewer.principal, run["id"], limit=CHILDREN_SHOWN)
    status = RunStatus(run["status"])
    waits: list[Any] = []
    if status == RunStatus.WAITING:
        waits, _ = await event_service.list_events(
            svc,
            viewer.principal,
            EventFilter(statuses=[EventStatus.WAITING.value], workflow_run_id=run["id"]),
            limit=WAITS_SHOWN,
            before=None,
        )
    now = svc.clock.now()
    names = {step.id: step.name for step in detail.steps}
    return {
        "viewer": viewer,
        "wire": wire,
        "run": {**run_row(run), **_durations(run, now)},
        "status": status.value,
        "ended": status.is_terminal,
        "can_rerun": status.is_terminal and status != RunStatus.COMPLETED,
        "output": None if run["output"] is None else highlight(run["output"]),
        "error": None if run["error"] is None else highlight(run["error"]),
        "timeline": timeline(run, attempts, now=now, names=names),
        "steps": [_step(step) for step in steps],
        "children": [run_row(child) for child in children],
        "more_children": len(children) >= CHILDREN_SHOWN,
        "waits": [
            {
                "key": w["event_key"],
                "requested": views.iso(w["requested_at"]),
                "expires": views.iso(w["expires_at"]),
            }
            for w in waits
        ],
        "wake_at": views.iso(run["wake_at"]) if status == RunStatus.WAITING else None,
        "queued": run["queued_reason"] if status == RunStatus.QUEUED else None,
        "live_url": f"{run_url(run['id'])}/live",
        "body_url": f"{run_url(run['id'])}/body",
    }


def _step(step: Any) -> dict[str, Any]:
    return {
        **step,
        "duration": ms(step["durationMs"]),
        "errorHtml": None if step["error"] is None else highlight(step["error"]),
        "outputHtml": None if step["output"] is None else highlight(step["output"]),
    }


def _durations(run: RunRow, now: datetime) -> dict[str, str | None]:
    """How long it waited to start, and how long it has run (so far, while it runs)."""
    started, completed = run["started_at"], run["completed_at"]
    waited_until = started or (None if completed else now)
    return {
        "waitedFor": None if waited_until is None else _span(run["created_at"], waited_until),
        "ranFor": None if started is None else _span(started, completed or now),
    }


def _span(start: datetime, end: datetime) -> str | None:
    return ms(max(0, int((end - start).total_seconds() * 1000)))


# --- the step timeline --------------------------------------------------------------------------

#: The timeline's x axis in SVG user units (each bar's own SVG scales to the row's width).
AXIS = 1000.0
_MIN_BAR = 4.0


def timeline(
    run: RunRow, attempts: list[StepRunRow], *, now: datetime, names: Mapping[str, str | None]
) -> dict[str, Any]:
    """One bar per step attempt on a shared time axis: from the run's start (or its first
    attempt's) to its end (or now, while it runs). Attempts a rerun reused from its original
    started before this run existed: they are labelled, not placed on the axis."""
    own = [
        a for a in attempts if a["started_at"] is not None and a["started_at"] >= run["created_at"]
    ]
    origin = min([a["started_at"] for a in own if a["started_at"] is not None], default=None)
    if run["started_at"] is not None:
        origin = min(run["started_at"], origin or run["started_at"])
    origin = origin or run["created_at"]
    ends = [origin] + [a["completed_at"] or now for a in own]
    if run["completed_at"] is not None:
        ends.append(run["completed_at"])
    elif not RunStatus(run["status"]).is_terminal:
        ends.append(now)
    finish = max(ends)
    span = max((finish - origin).total_seconds(), 0.001)
    return {
        "bars": [_bar(a, origin, span, now, names, reused=a not in own) for a in attempts],
        "total": _span(origin, finish),
    }


def _bar(
    attempt: StepRunRow,
    origin: datetime,
    span: float,
    now: datetime,
    names: Mapping[str, str | None],
    *,
    reused: bool,
) -> dict[str, Any]:
    start, end = attempt["started_at"], attempt["completed_at"]
    code = attempt["error"].get("code") if isinstance(attempt["error"], dict) else None
    x, width = 0.0, _MIN_BAR
    if start is not None and not reused:
        x = min(max(AXIS * (start - origin).total_seconds() / span, 0.0), AXIS - _MIN_BAR)
        width = max(AXIS * ((end or now) - start).total_seconds() / span, _MIN_BAR)
    return {
        "step": attempt["step_id"],
        "name": names.get(attempt["step_id"]),
        "attempt": attempt["attempt"],
        "status": attempt["status"],
        "code": code if isinstance(code, str) else None,
        "lost": code == "WORKER_LOST",
        "retry": attempt["attempt"] > 1,
        "reused": reused,
        "duration": None if start is None else _span(start, end or now),
        "x": f"{x:.1f}",
        "width": f"{min(width, AXIS - x):.1f}",
        "started": views.iso(start),
        "error": None if attempt["error"] is None else highlight(attempt["error"]),
    }


# --- JSON, highlighted --------------------------------------------------------------------------

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")(?P<colon>\s*:)?'
    r"|(?P<number>-?[0-9][0-9.eE+-]*)"
    r"|(?P<bool>true|false)"
    r"|(?P<null>null)"
)


def highlight(value: object) -> Markup:
    """Indented JSON as escaped HTML with a span (class ``j-key``, ``j-str``, ``j-num``,
    ``j-bool`` or ``j-null``) around each token; the styles live in ``runs.css``. Tokenizes
    the serialized text (valid JSON), so any depth costs no recursion."""
    text = pretty(value)
    if len(text) > HIGHLIGHT_MAX_CHARS:
        return escape(text)
    out: list[str] = []
    position = 0
    for found in _TOKEN.finditer(text):
        out.append(str(escape(text[position : found.start()])))
        kind = found.lastgroup
        if found.group("string") is not None:
            kind = "key" if found.group("colon") else "str"
            out.append(f'<span class="j-{kind}">{escape(found.group("string"))}</span>')
            out.append(str(escape(found.group("colon") or "")))
        else:
            css = {"number": "num", "bool": "bool", "null": "null"}[str(kind)]
            out.append(f'<span class="j-{css}">{escape(found.group(0))}</span>')
        position = found.end()
    out.append(str(escape(text[position:])))
    return Markup("".join(out))  # noqa: S704 - every piece escaped above
