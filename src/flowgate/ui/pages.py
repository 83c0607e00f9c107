"""What every page of the monitor shares: the router, rendering, sessions and view helpers.

Each page module (``ui.runs``, ``ui.workflows``, ...) adds its routes to ``router``; ``ui.routes``
imports them all and mounts the router. Pages render with ``render``; a page that needs a signed-in
viewer calls ``viewer`` (reads) or ``form_viewer`` (state-changing POSTs, CSRF checked).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from flowgate import errors, jsonvalue
from flowgate.api import views
from flowgate.api.errors import rate_limit_headers, status_of
from flowgate.service import auth
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.ui import session as sessions
from flowgate.ui.session import Session

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50


@functools.cache
def _templates() -> jinja2.Environment:
    """The monitor's Jinja2 environment, built on the first page rendered: ``serve`` does not
    pay for Jinja2 (~15 ms of imports) before it answers its first API request."""
    import jinja2  # deferred: see the docstring

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


FormField = Annotated[str | None, Form()]


def render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(**context)
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
    response = render(
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


# --- sessions ----------------------------------------------------------------------------------


def svc_of(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def signing_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "ui_signing_key", None)
    if key is None:
        key = svc_of(request).vault.derive_key("ui-session")
        request.app.state.ui_signing_key = key
    return key


def secure(request: Request) -> bool:
    return svc_of(request).settings.base_url.startswith("https://")


def set_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def clear_cookie(request: Request, response: Response) -> None:
    set_cookie(request, response, "", 0)


def safe_next(raw: str | None) -> str:
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


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
    if sessions.COOKIE in request.cookies:
        clear_cookie(request, response)
    return response


class Viewer:
    """A signed-in request: its session, who it acts as, and the CSRF token for its forms."""

    def __init__(self, session: Session, principal: auth.Principal, csrf: str) -> None:
        self.session = session
        self.principal = principal
        self.csrf = csrf


async def current_viewer(request: Request, category: Category = Category.READ) -> Viewer | None:
    svc = svc_of(request)
    key = signing_key(request)
    found = sessions.decode(key, request.cookies.get(sessions.COOKIE), svc.clock.now())
    if found is None:
        return None
    principal = await sessions.principal_of(svc, found, category)
    if principal is None:
        return None
    return Viewer(found, principal, sessions.csrf_token(key, found))


async def form_viewer(request: Request, csrf: str | None) -> Viewer | RedirectResponse:
    """A state-changing POST: signed in (else to the login page) with the session's CSRF token
    (else Forbidden)."""
    viewer = await current_viewer(request, Category.EXECUTE)
    if viewer is None:
        return to_login(request)
    if not sessions.csrf_ok(signing_key(request), viewer.session, csrf):
        raise errors.Forbidden("Missing or invalid CSRF token: reload the page and try again")
    return viewer


# --- view helpers ------------------------------------------------------------------------------


def run_url(run_id: str) -> str:
    """A run's page in the monitor (the link Axiom's reply carries)."""
    return f"/ui/runs/{quote(run_id, safe='')}"


def run_row(run: Any) -> dict[str, Any]:
    """The API's run summary, plus what a row of the monitor shows besides."""
    duration = None
    if run["started_at"] is not None and run["completed_at"] is not None:
        duration = ms(int((run["completed_at"] - run["started_at"]).total_seconds() * 1000))
    return {
        **views.run_summary(run),
        "duration": duration,
        "url": run_url(run["id"]),
    }


def ms(value: object) -> str | None:
    if not isinstance(value, int):
        return None
    if value < 1000:
        return f"{value} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    minutes, seconds = divmod(value // 1000, 60)
    return f"{minutes} min {seconds} s"


def pretty(value: object) -> str:
    """Indented JSON (escaped by the template); very deep values stay compact."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except (TypeError, orjson.JSONEncodeError):
        return jsonvalue.dumps(value).decode()
