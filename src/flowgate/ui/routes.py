"""The runs monitor at ``/ui``: server-rendered pages (Jinja2, autoescaped), one stylesheet.

Sign-in is a form at ``/ui/login`` with one field, ``key``, checked like an API key; the session
cookie names the key and never holds it (``ui.session``). Every form that changes state carries a
CSRF token bound to the session. Errors under ``/ui/`` are HTML pages, not JSON envelopes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flowgate import errors, jsonvalue
from flowgate.api import views
from flowgate.api.errors import rate_limit_headers, status_of
from flowgate.service import auth
from flowgate.service import runs as run_service
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.statuses import RunStatus
from flowgate.store.base import Page, RunFilter
from flowgate.ui import session as sessions
from flowgate.ui.session import Session

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

FormField = Annotated[str | None, Form()]


def _render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
            "form-action 'self'; base-uri 'none'",
        },
    )


def _render_error(exc: errors.FlowgateError, request_id: str) -> Response:
    status = status_of(exc)
    response = _render(
        "error.html",
        status_code=status,
        title=f"Error {status}",
        message=exc.message if status < 500 else "Internal server error",
        request_id=request_id,
    )
    response.headers.update(rate_limit_headers(exc))
    return response


class _HtmlErrors(APIRoute):
    """A page's errors (not found, forbidden, rate limited...) as HTML pages. Errors raised before
    a page is reached (a NUL in the path, no such route) keep the API's JSON envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except errors.FlowgateError as exc:
                return _render_error(exc, str(getattr(request.state, "request_id", "")))

        return handler


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=_HtmlErrors)
static = StaticFiles(directory=HERE / "static")


def mount(app: Any) -> None:
    """The one call ``api.app`` makes: the pages and ``/ui/static``."""
    app.include_router(router)
    app.mount("/ui/static", static, name="ui-static")


# --- sessions ----------------------------------------------------------------------------------


def _svc(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _signing_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "ui_signing_key", None)
    if key is None:
        key = _svc(request).vault.derive_key("ui-session")
        request.app.state.ui_signing_key = key
    return key


def _secure(request: Request) -> bool:
    return _svc(request).settings.base_url.startswith("https://")


def _set_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def _clear_cookie(request: Request, response: Response) -> None:
    _set_cookie(request, response, "", 0)


def _safe_next(raw: str | None) -> str:
    """Only a path of this monitor: never another site, a scheme or a protocol-relative URL."""
    if (
        not raw
        or len(raw) > 2000
        or not (raw == "/ui" or raw.startswith("/ui/"))
        or "//" in raw
        or "\\" in raw
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw)
    ):
        return "/ui/runs"
    return raw


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
    if sessions.COOKIE in request.cookies:
        _clear_cookie(request, response)
    return response


class _Viewer:
    """A signed-in request: its session, who it acts as, and the CSRF token for its forms."""

    def __init__(self, session: Session, principal: auth.Principal, csrf: str) -> None:
        self.session = session
        self.principal = principal
        self.csrf = csrf


async def _viewer(request: Request, category: Category = Category.READ) -> _Viewer | None:
    svc = _svc(request)
    key = _signing_key(request)
    found = sessions.decode(key, request.cookies.get(sessions.COOKIE), svc.clock.now())
    if found is None:
        return None
    principal = await sessions.principal_of(svc, found, category)
    if principal is None:
        return None
    return _Viewer(found, principal, sessions.csrf_token(key, found))


async def _form_viewer(request: Request, csrf: str | None) -> _Viewer | RedirectResponse:
    """A state-changing POST: signed in (else to the login page) with the session's CSRF token
    (else Forbidden)."""
    viewer = await _viewer(request, Category.EXECUTE)
    if viewer is None:
        return _to_login(request)
    if not sessions.csrf_ok(_signing_key(request), viewer.session, csrf):
        raise errors.Forbidden("Missing or invalid CSRF token: reload the page and try again")
    return viewer


# --- pages -------------------------------------------------------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    if await _viewer(request) is None:
        return _to_login(request)
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _render("login.html", title="Sign in", next=_safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request,
    key: FormField = None,
    next: FormField = None,
) -> Response:
    svc = _svc(request)
    target = _safe_next(next)
    try:
        principal = await auth.authenticate(svc, (key or "").strip() or None)
    except errors.Unauthorized as exc:
        message = "Enter an API key" if not (key or "").strip() else exc.message
        return _render("login.html", status_code=401, title="Sign in", next=target, error=message)
    session = sessions.new_session(principal.key_id, principal.project_id, svc.clock.now())
    response = RedirectResponse(target, status_code=303)
    _set_cookie(
        request,
        response,
        sessions.encode(_signing_key(request), session),
        int(sessions.LIFETIME.total_seconds()),
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: FormField = None) -> Response:
    found = await _form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    response = RedirectResponse("/ui/login", status_code=303)
    _clear_cookie(request, response)
    return response


def _statuses(raw: list[str]) -> list[str]:
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    allowed = {s.value for s in RunStatus}
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise errors.InvalidRequest(
            f"Unknown status {unknown[0]!r}; one of {', '.join(sorted(allowed))}"
        )
    return values


@router.get("/runs")
async def runs_page(request: Request) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _to_login(request)
    svc = _svc(request)
    query = request.query_params
    workflow_id = (query.get("workflowId") or "").strip() or None
    source = (query.get("source") or "").strip() or None
    statuses = _statuses(query.getlist("status"))
    cursor = query.get("cursor") or None
    if workflow_id is not None:
        found = await svc.store.get_workflow(viewer.principal.project_id, workflow_id)
        workflow_id = found["id"] if found else workflow_id
    where = RunFilter(workflow_id=workflow_id, statuses=statuses, source=source)
    rows = await run_service.list_runs(
        svc,
        viewer.principal,
        where,
        Page(limit=PAGE_SIZE + 1, after=views.decode_cursor(cursor)),
    )
    shown = rows[:PAGE_SIZE]
    next_cursor = None
    if len(rows) > PAGE_SIZE:
        next_cursor = views.encode_cursor(shown[-1]["created_at"], shown[-1]["id"])
    filters = {
        "workflowId": query.get("workflowId") or "",
        "status": statuses,
        "source": query.get("source") or "",
    }
    next_url = None
    if next_cursor is not None:
        params = [(k, v) for k, v in (("workflowId", filters["workflowId"]),
                                      ("source", filters["source"])) if v]  # fmt: skip
        params += [("status", s) for s in statuses] + [("cursor", next_cursor)]
        next_url = "/ui/runs?" + urlencode(params)
    title = "Runs"
    if statuses:
        title += " · " + ", ".join(statuses)
    if filters["workflowId"]:
        title += f" · {filters['workflowId']}"
    return _render(
        "runs.html",
        title=title,
        viewer=viewer,
        runs=[_run_row(run) for run in shown],
        filters=filters,
        all_statuses=[s.value for s in RunStatus],
        next_url=next_url,
        first_url="/ui/runs" if cursor else None,
    )


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _to_login(request)
    detail = await run_service.get_run(_svc(request), viewer.principal, run_id)
    return _run_response(viewer, detail, notice=None)


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, csrf: FormField = None) -> Response:
    found = await _form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    svc = _svc(request)
    try:
        await run_service.cancel_run(svc, found.principal, run_id)
    except errors.Conflict as exc:
        detail = await run_service.get_run(svc, found.principal, run_id)
        return _run_response(found, detail, notice=exc.message, status_code=409)
    return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}", status_code=303)


# --- view helpers ------------------------------------------------------------------------------


def _run_response(
    viewer: _Viewer, detail: run_service.RunDetail, *, notice: str | None, status_code: int = 200
) -> Response:
    run = detail.run
    wire = views.run_detail(detail)
    steps = wire["steps"] if isinstance(wire["steps"], list) else []
    return _render(
        "run.html",
        status_code=status_code,
        title=f"Run {run['id']}",
        viewer=viewer,
        run=_run_row(run),
        ended=RunStatus(run["status"]).is_terminal,
        input=_pretty(run["input"]),
        env=_pretty(wire["env"]),
        output=None if run["output"] is None else _pretty(run["output"]),
        error=None if run["error"] is None else _pretty(run["error"]),
        queued_reason=None if run["queued_reason"] is None else _pretty(run["queued_reason"]),
        steps=[
            {
                **step,
                "duration": _ms(step["durationMs"]),
                "errorText": None if step["error"] is None else _pretty(step["error"]),
            }
            for step in steps
            if isinstance(step, dict)
        ],
        notice=notice,
    )


def _run_row(run: Any) -> dict[str, Any]:
    """The API's run summary, plus what a row of the monitor shows besides."""
    duration = None
    if run["started_at"] is not None and run["completed_at"] is not None:
        duration = _ms(int((run["completed_at"] - run["started_at"]).total_seconds() * 1000))
    return {
        **views.run_summary(run),
        "duration": duration,
        "url": f"/ui/runs/{quote(run['id'], safe='')}",
    }


def _ms(value: object) -> str | None:
    if not isinstance(value, int):
        return None
    if value < 1000:
        return f"{value} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    minutes, seconds = divmod(value // 1000, 60)
    return f"{minutes} min {seconds} s"


def _pretty(value: object) -> str:
    """Indented JSON (escaped by the template); very deep values stay compact."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except (TypeError, orjson.JSONEncodeError):
        return jsonvalue.dumps(value).decode()
