"""A small synchronous Python SDK for the flowgate API (DESIGN §3), used by the CLI.

Every method returns the ``data`` of the envelope ``{"success": true, "data": …}``; an error
envelope, an unreadable reply or an unreachable server raises :class:`ApiError`.
"""

from __future__ import annotations

import os
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from flowgate.errors import FlowgateError
from flowgate.statuses import TERMINAL_RUN_STATUSES
from flowgate.types import JSON, JSONObject

__all__ = ["DEFAULT_URL", "TERMINAL_STATUSES", "ApiError", "Client"]

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL_STATUSES = frozenset(status.value for status in TERMINAL_RUN_STATUSES)
# Whatever the server's FLOWGATE_MAX_WAIT_SECS, a waiting request may take this much longer.
_WAIT_MARGIN_SECS = 10.0


class ApiError(FlowgateError):
    """The flowgate server answered with an error, or could not be reached."""

    def __init__(
        self, message: str, *, code: str, status: int | None = None, details: object = None
    ) -> None:
        super().__init__(message, details=details)
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _segment(value: str) -> str:
    """One path segment: workflow names may hold spaces and other characters."""
    return quote(value, safe="")


def _wait_header(wait: float | bool) -> str:
    if isinstance(wait, bool):
        return "true" if wait else "false"
    return f"{wait:g}"


class Client:
    """A flowgate server: ``url`` defaults to FLOWGATE_URL, ``key`` to FLOWGATE_API_KEY."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("FLOWGATE_URL") or DEFAULT_URL).rstrip("/")
        key = key or os.environ.get("FLOWGATE_API_KEY")
        headers = {"accept": "application/json", "user-agent": "flowgate-client"}
        if key:
            headers["x-api-key"] = key
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- workflows ------------------------------------------------------------------------

    def create_workflow(self, definition: JSONObject) -> JSONObject:
        return _object(self._request("POST", "/api/v1/workflows", json=definition))

    def get_workflow(self, id_or_name: str) -> JSONObject:
        return _object(self._request("GET", f"/api/v1/workflows/{_segment(id_or_name)}"))

    def update_workflow(self, workflow_id: str, definition: JSONObject) -> JSONObject:
        path = f"/api/v1/workflows/{_segment(workflow_id)}"
        return _object(self._request("PUT", path, json=definition))

    def list_workflows(self, *, limit: int | None = None, cursor: str | None = None) -> list[JSON]:
        params = _params(limit=limit, cursor=cursor)
        return _array(self._request("GET", "/api/v1/workflows", params=params))

    def activate_workflow(self, workflow_id: str) -> JSONObject:
        path = f"/api/v1/workflows/{_segment(workflow_id)}/activate"
        return _object(self._request("POST", path))

    def pause_workflow(self, workflow_id: str) -> JSONObject:
        return _object(self._request("POST", f"/api/v1/workflows/{_segment(workflow_id)}/pause"))

    def apply_workflow(self, definition: JSONObject, *, activate: bool = True) -> JSONObject:
        """Update the workflow its ``id`` (or ``name``) names if it exists, else create it."""
        existing = self._find_workflow(definition.get("id") or definition.get("name"))
        if existing is None:
            row = self.create_workflow(definition)
        else:
            row = self.update_workflow(str(existing["id"]), definition)
        if activate and row.get("status") != "active":
            row = self.activate_workflow(str(row["id"]))
        return row

    def _find_workflow(self, id_or_name: JSON) -> JSONObject | None:
        if not isinstance(id_or_name, str) or not id_or_name:
            return None
        try:
            return self.get_workflow(id_or_name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # -- runs -----------------------------------------------------------------------------

    def start_run(
        self,
        workflow: str,
        input: JSONObject | None = None,
        *,
        env: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        wait: float | bool | None = None,
    ) -> JSONObject:
        """``{runId, status, …}``; with ``wait``, the whole run (finished or as it is so far)."""
        body: JSONObject = {}
        if input is not None:
            body["input"] = input
        if env is not None:
            body["env"] = dict(env)
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        if priority is not None:
            body["priority"] = priority
        headers = {} if wait is None else {"x-api-wait": _wait_header(wait)}
        path = f"/api/v1/workflows/{_segment(workflow)}/run"
        timeout = self._wait_timeout(None if wait is None or wait is False else wait)
        return _object(self._request("POST", path, json=body, headers=headers, timeout=timeout))

    def get_run(self, run_id: str, *, wait_secs: float | None = None) -> JSONObject:
        """The run with its steps; ``wait_secs`` long-polls until it ends or that time passes."""
        params = _params(waitSecs=None if wait_secs is None else f"{wait_secs:g}")
        return _object(
            self._request(
                "GET",
                f"/api/v1/runs/{_segment(run_id)}",
                params=params,
                timeout=self._wait_timeout(wait_secs),
            )
        )

    def list_runs(self, **filters: str | int | None) -> JSONObject:
        """One page: ``{data, hasMore, nextCursor}``; filters as the API names them
        (``workflowId``, ``status``, ``source``, ``createdAfter``, ``limit``, ``cursor``)."""
        return _object(self._request("GET", "/api/v1/runs", params=_params(**filters), whole=True))

    def cancel_run(self, run_id: str) -> JSONObject:
        return _object(self._request("POST", f"/api/v1/runs/{_segment(run_id)}/cancel"))

    # -- keys -----------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        project_id: str | None = None,
        expires_at: str | datetime | None = None,
        rate_limit_per_minute: int | None = None,
    ) -> JSONObject:
        """The new key, with its secret in ``key``: the only time the server shows it."""
        body: JSONObject = {"name": name, "scopes": list(scopes)}
        if project_id is not None:
            body["projectId"] = project_id
        if expires_at is not None:
            body["expiresAt"] = (
                expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
            )
        if rate_limit_per_minute is not None:
            body["rateLimitPerMinute"] = rate_limit_per_minute
        return _object(self._request("POST", "/api/v1/keys", json=body))

    def list_keys(self) -> list[JSON]:
        return _array(self._request("GET", "/api/v1/keys"))

    def revoke_key(self, key_id: str) -> JSONObject:
        return _object(self._request("DELETE", f"/api/v1/keys/{_segment(key_id)}"))

    # -- transport ------------------------------------------------------------------------

    def _wait_timeout(self, wait: float | bool | None) -> httpx.Timeout | None:
        """A waiting request may take as long as the wait: ``True`` means the server's cap."""
        if wait is None:
            return None
        if wait is True:
            return httpx.Timeout(self.timeout, read=None)
        return httpx.Timeout(self.timeout, read=self.timeout + float(wait) + _WAIT_MARGIN_SECS)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        whole: bool = False,
    ) -> Any:
        """The envelope's ``data`` (or, with ``whole``, the envelope itself); raises ApiError."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(
                method, path, json=json, params=params, headers=headers, **extra
            )
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach flowgate at {self.url}: {exc or type(exc).__name__}",
                code="CONNECTION_ERROR",
            ) from exc
        envelope = _envelope(response)
        if envelope.get("success") is not True:
            raise _error_of(response, envelope)
        return envelope if whole else envelope.get("data")


def _params(**values: str | int | None) -> dict[str, str | int]:
    return {name: value for name, value in values.items() if value is not None}


def _envelope(response: httpx.Response) -> JSONObject:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("success"), bool):
        return body
    snippet = response.text[:200].strip()
    raise ApiError(
        f"unexpected reply (HTTP {response.status_code}) from {response.request.url}"
        + (f": {snippet}" if snippet else ""),
        code="INVALID_RESPONSE" if response.is_success else f"HTTP_{response.status_code}",
        status=response.status_code,
    )


def _error_of(response: httpx.Response, envelope: JSONObject) -> ApiError:
    error = envelope.get("error")
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = error.get("message")
    return ApiError(
        message if isinstance(message, str) else f"HTTP {response.status_code}",
        code=code if isinstance(code, str) else f"HTTP_{response.status_code}",
        status=response.status_code,
        details=error.get("details"),
    )


def _object(data: JSON) -> JSONObject:
    if not isinstance(data, dict):
        raise ApiError("expected a JSON object as data", code="INVALID_RESPONSE")
    return data


def _array(data: JSON) -> list[JSON]:
    if not isinstance(data, list):
        raise ApiError("expected a JSON array as data", code="INVALID_RESPONSE")
    return data
