"""The runs monitor at ``/ui``: server-rendered pages (Jinja2, autoescaped), htmx, one stylesheet.

Sign-in is a form at ``/ui/login`` with one field, ``key``, checked like an API key; the session
cookie names the key and never holds it (``ui.session``). Every form that changes state carries a
CSRF token bound to the session. Errors under ``/ui/`` are HTML pages, not JSON envelopes.

This module holds sign-in and sign-out and mounts the pages; each page lives in its own module,
imported here so that its routes join ``pages.router``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from flowgate import errors
from flowgate.service import auth
from flowgate.ui import events as _events  # noqa: F401  (each page module adds its routes)
from flowgate.ui import overview as _overview  # noqa: F401
from flowgate.ui import runs as _runs  # noqa: F401
from flowgate.ui import session as sessions
from flowgate.ui import workflows as _workflows  # noqa: F401
from flowgate.ui.pages import (
    FormField,
    clear_cookie,
    current_viewer,
    form_viewer,
    render,
    router,
    safe_next,
    set_cookie,
    signing_key,
    static,
    svc_of,
    to_login,
)


def mount(app: Any) -> None:
    """The one call ``api.app`` makes: the pages and ``/ui/static``."""
    app.include_router(router)
    app.mount("/ui/static", static, name="ui-static")


@router.get("")
async def home(request: Request) -> Response:
    if await current_viewer(request) is None:
        return to_login(request)
    return RedirectResponse("/ui/overview", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render("login.html", title="Sign in", next=safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request,
    key: FormField = None,
    next: FormField = None,
) -> Response:
    svc = svc_of(request)
    target = safe_next(next)
    try:
        principal = await auth.authenticate(svc, (key or "").strip() or None)
    except errors.Unauthorized as exc:
        message = "Enter an API key" if not (key or "").strip() else exc.message
        return render("login.html", status_code=401, title="Sign in", next=target, error=message)
    session = sessions.new_session(principal.key_id, principal.project_id, svc.clock.now())
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        request,
        response,
        sessions.encode(signing_key(request), session),
        int(sessions.LIFETIME.total_seconds()),
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    response = RedirectResponse("/ui/login", status_code=303)
    clear_cookie(request, response)
    return response
