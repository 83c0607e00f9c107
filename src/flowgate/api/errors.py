"""The one map from error class to HTTP status, and the handlers that render the envelope.

A dialect (``api/dialects/``) answers its errors in its own body shape: it registers a renderer
for its path prefix with ``register_error_shape``, and every error under that prefix — raised by
a route, by the router (no route, wrong method) or by the middleware (body too large, bad
JSON) — goes through it, so nothing falls through to the native envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flowgate import errors
from flowgate.api.responses import JSONResponse

log = logging.getLogger(__name__)

HTTP_STATUS: dict[type[errors.FlowgateError], int] = {
    errors.InvalidRequest: 400,
    errors.ValidationFailed: 400,
    errors.InvalidStatus: 400,
    errors.TemplateError: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.IdempotencyKeyReused: 409,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.RateLimited: 429,
    errors.QuotaExceeded: 429,
    errors.FlowgateError: 500,
}


def status_of(exc: errors.FlowgateError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def rate_limit_headers(exc: errors.FlowgateError) -> dict[str, str]:
    """``Retry-After`` and the ``RateLimit-*`` headers of a RateLimited error; else none."""
    if not isinstance(exc, errors.RateLimited):
        return {}
    return {
        "Retry-After": str(exc.retry_after),
        "RateLimit-Limit": str(exc.limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(exc.reset),
    }


def error_response(exc: errors.FlowgateError) -> Response:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=status_of(exc),
        headers=rate_limit_headers(exc),
    )


#: ``(error, request id) -> response`` in a dialect's own body shape.
ErrorRenderer = Callable[[errors.FlowgateError, str], Response]
_ERROR_SHAPES: list[tuple[str, ErrorRenderer]] = []


def register_error_shape(path_prefix: str, render: ErrorRenderer) -> None:
    """Errors of requests whose path starts with ``path_prefix`` (which ends with ``/``), or is
    that prefix without its slash, are rendered by ``render``."""
    _ERROR_SHAPES.append((path_prefix, render))


def error_response_for(path: str, exc: errors.FlowgateError, request_id: str) -> Response:
    """The error in the shape of the API that ``path`` belongs to. A NUL ends the path here:
    ``/ext%00`` is refused in Pinkfish's shape like ``/ext/%00``."""
    path = path.split("\x00", 1)[0]
    for prefix, render in _ERROR_SHAPES:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return render(exc, request_id)
    return error_response(exc)


def message_with_details(exc: errors.FlowgateError) -> str:
    """The message with each ``{path, message}`` detail appended (``Input validation failed:
    rows.0.email: Required; …``), for error bodies that have no ``details`` field."""
    details = exc.details if isinstance(exc.details, list) else []
    failures = [
        f"{'.'.join(str(part) for part in item.get('path', [])) or '(input)'}: "
        f"{item.get('message', '')}"
        for item in details
        if isinstance(item, dict)
    ]
    return f"{exc.message}: {'; '.join(failures)}" if failures else exc.message


def _respond(request: Request, exc: errors.FlowgateError) -> Response:
    request_id = str(getattr(request.state, "request_id", ""))
    return error_response_for(request.url.path, exc, request_id)


async def _flowgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.FlowgateError)  # noqa: S101 - registered for this class
    return _respond(request, exc)


def _loc_path(loc: tuple[int | str, ...]) -> list[int | str]:
    return (
        [part for part in loc[1:]]
        if loc and loc[0] in ("body", "query", "header", "path")
        else list(loc)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class
    details = [
        {"path": _loc_path(tuple(e.get("loc", ()))), "message": str(e.get("msg", "Invalid value"))}
        for e in exc.errors()
    ]
    return _respond(request, errors.InvalidRequest("Invalid request", details=details))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class
    if exc.status_code == 404:
        return _respond(request, errors.NotFound(f"No route for {request.url.path}"))
    if exc.status_code == 405:
        return _respond(
            request,
            errors.MethodNotAllowed(f"Method {request.method} not allowed for {request.url.path}"),
        )
    code = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}.get(
        exc.status_code, "INTERNAL"
    )
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.FlowgateError, _flowgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
