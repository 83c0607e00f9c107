"""The one map from error class to HTTP status, and the handlers that render the envelope."""

from __future__ import annotations

import logging

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


def error_response(exc: errors.FlowgateError) -> Response:
    headers = {}
    if isinstance(exc, errors.RateLimited):
        headers = {
            "Retry-After": str(exc.retry_after),
            "RateLimit-Limit": str(exc.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(exc.reset),
        }
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=status_of(exc), headers=headers
    )


async def _flowgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.FlowgateError)  # noqa: S101 - registered for this class
    return error_response(exc)


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
    return error_response(errors.InvalidRequest("Invalid request", details=details))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class
    if exc.status_code == 404:
        return error_response(errors.NotFound(f"No route for {request.url.path}"))
    if exc.status_code == 405:
        return error_response(
            errors.MethodNotAllowed(f"Method {request.method} not allowed for {request.url.path}")
        )
    code = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}.get(
        exc.status_code, "INTERNAL"
    )
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.FlowgateError, _flowgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
