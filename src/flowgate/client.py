"""The Python SDK for the flowgate API (DESIGN §3): ``Client`` (sync) and ``AsyncClient``.

Both clients are thin drivers around one sans-I/O core. Each API call is described once, by a
method of ``_Calls`` that returns a *flow*: a generator that yields effects (send this request,
sleep this long), receives the replies, and returns the result. The sync driver performs the
effects with ``httpx.Client`` and ``time.sleep``, the async one with ``httpx.AsyncClient`` and
``asyncio.sleep``; envelopes, typed results, the error classes, retries and long-polls live in the
core alone, so the two clients cannot drift apart (a unit test also compares their signatures).

An error envelope raises the :class:`ApiError` subclass of its ``error.code`` (:class:`NotFound`,
:class:`ValidationFailed`, …); an unreadable reply or an unreachable server raises ``ApiError``.
The event calls speak the Strait-style API (``/v1/events…``, DESIGN §6): its snake_case bodies
come back as :class:`EventTrigger`, and its error body ``{"error": {"code", "message",
"details"?}, "request_id"}`` raises the same classes, with the same codes, as a native error.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, overload
from urllib.parse import quote

import httpx

from flowgate.errors import FlowgateError
from flowgate.statuses import TERMINAL_RUN_STATUSES
from flowgate.types import JSON, JSONObject

__all__ = [
    "DEFAULT_URL",
    "TERMINAL_STATUSES",
    "ApiError",
    "AsyncClient",
    "BufferedEvent",
    "Client",
    "Conflict",
    "EventTrigger",
    "Forbidden",
    "IdempotencyKeyReused",
    "Internal",
    "InvalidRequest",
    "InvalidStatus",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "RetryPolicy",
    "Run",
    "StartedRun",
    "Step",
    "TemplateError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL_STATUSES = frozenset(status.value for status in TERMINAL_RUN_STATUSES)
SOURCE_HEADER = "x-flowgate-source"
# Whatever the server's FLOWGATE_MAX_WAIT_SECS, a waiting request may take this much longer.
_WAIT_MARGIN_SECS = 10.0
# One long-poll of wait_for_run asks for at most this long: short enough for proxies that cut
# idle connections at a minute, long enough that a slow run costs a request every half minute.
_LONG_POLL_SECS = 30.0
# A long-poll wakes on any change of the run (a step ending), and a server that cannot long-poll
# answers at once: the next poll never starts sooner than this after the previous one.
_MIN_POLL_INTERVAL_SECS = 0.25

T = TypeVar("T")


# -- errors ---------------------------------------------------------------------------------------


class ApiError(FlowgateError):
    """The flowgate server answered with an error, or could not be reached."""

    code = "API_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: object = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.code = code or type(self).code
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidRequest(ApiError):
    """400: the request is malformed (bad JSON, wrong field types)."""

    code = "INVALID_REQUEST"


class ValidationFailed(ApiError):
    """400: the input fails the workflow's inputSchema; ``details`` lists each failure."""

    code = "VALIDATION_ERROR"


class InvalidStatus(ApiError):
    """400: the workflow is not active."""

    code = "INVALID_STATUS"


class TemplateError(ApiError):
    """400: a template in the request could not be parsed."""

    code = "TEMPLATE_ERROR"


class Unauthorized(ApiError):
    """401: missing, unknown, revoked or expired key."""

    code = "UNAUTHORIZED"


class Forbidden(ApiError):
    """403: the key lacks the scope."""

    code = "FORBIDDEN"


class NotFound(ApiError):
    """404: unknown id, or another project's."""

    code = "NOT_FOUND"


class MethodNotAllowed(ApiError):
    """405: the path exists, the method does not."""

    code = "METHOD_NOT_ALLOWED"


class IdempotencyKeyReused(ApiError):
    """409: the idempotency key was used with another input; ``details`` has the differences."""

    code = "IDEMPOTENCY_KEY_REUSED"


class Conflict(ApiError):
    """409: the object's state forbids the action (cancel a finished run, a name taken)."""

    code = "CONFLICT"


class PayloadTooLarge(ApiError):
    """413: the body is over the server's limit."""

    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    """415: a body the endpoint cannot read."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(ApiError):
    """429: the key's rate limit; ``retry_after`` is the server's Retry-After in seconds."""

    code = "RATE_LIMITED"

    retry_after: float | None = None


class QuotaExceeded(ApiError):
    """429: the project's run quota for the period is used (never retried)."""

    code = "QUOTA_EXCEEDED"


class Internal(ApiError):
    """500: an unexpected server error; quote ``request_id`` when reporting it."""

    code = "INTERNAL"


_ERROR_CLASSES: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest, ValidationFailed, InvalidStatus, TemplateError, Unauthorized, Forbidden,
        NotFound, MethodNotAllowed, IdempotencyKeyReused, Conflict, PayloadTooLarge,
        UnsupportedMediaType, RateLimited, QuotaExceeded, Internal,
    )
}  # fmt: skip


def error_class(code: str) -> type[ApiError]:
    """The exception class of an envelope's ``error.code``; unknown codes get ``ApiError``."""
    return _ERROR_CLASSES.get(code, ApiError)


# -- typed results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of a run (``steps[]`` of ``GET /api/v1/runs/{id}``)."""

    id: str
    name: str | None
    type: str | None
    status: str
    attempt: int
    output: JSON
    error: JSONObject | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JSON) -> Step:
        obj = _object(data)
        attempt = obj.get("attempt")
        duration = obj.get("durationMs")
        return cls(
            id=_required_str(obj, "id"),
            name=_optional_str(obj, "name"),
            type=_optional_str(obj, "type"),
            status=_required_str(obj, "status"),
            attempt=attempt if isinstance(attempt, int) else 0,
            output=obj.get("output"),
            error=_optional_object(obj, "error"),
            started_at=_timestamp(obj, "startedAt"),
            completed_at=_timestamp(obj, "completedAt"),
            duration_ms=duration if isinstance(duration, int) else None,
            raw=obj,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """A run as ``GET /api/v1/runs/{id}`` shows it (``steps`` is empty where a reply omits them).

    Statuses stay strings, so a status a newer server adds does not break an older SDK.
    """

    id: str
    workflow_id: str
    workflow_version: int | None
    status: str
    input: JSON
    env: JSONObject
    output: JSON
    error: JSONObject | None
    source: str | None
    parent_run_id: str | None
    #: The run this one replays or reruns (a replay or rerun only).
    replay_of: str | None = None
    rerun_of: str | None = None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    steps: tuple[Step, ...]
    raw: JSONObject = field(repr=False, compare=False)

    @property
    def ended(self) -> bool:
        """``completed``, ``failed``, ``canceled`` or ``timed_out``: it will not change again."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: JSON) -> Run:
        obj = _object(data)
        steps = obj.get("steps")
        env = obj.get("env")
        return cls(
            id=_required_str(obj, "id"),
            workflow_id=_required_str(obj, "workflowId"),
            workflow_version=_optional_int(obj, "workflowVersion"),
            status=_required_str(obj, "status"),
            input=obj.get("input"),
            env=env if isinstance(env, dict) else {},
            output=obj.get("output"),
            error=_optional_object(obj, "error"),
            source=_optional_str(obj, "source"),
            parent_run_id=_optional_str(obj, "parentRunId"),
            replay_of=_optional_str(obj, "replayOf"),
            rerun_of=_optional_str(obj, "rerunOf"),
            created_at=_timestamp(obj, "createdAt"),
            started_at=_timestamp(obj, "startedAt"),
            completed_at=_timestamp(obj, "completedAt"),
            steps=tuple(Step.from_json(s) for s in steps) if isinstance(steps, list) else (),
            raw=obj,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedRun:
    """The reply to starting a run (``/run`` without a wait, ``replay``, ``rerun``).

    ``replayed`` is true when an idempotency key matched an existing run.
    """

    run_id: str
    status: str
    workflow_id: str
    workflow_version: int | None
    replayed: bool = False
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JSON, *, replayed: bool = False) -> StartedRun:
        obj = _object(data)
        return cls(
            run_id=_required_str(obj, "runId"),
            status=_required_str(obj, "status"),
            workflow_id=_required_str(obj, "workflowId"),
            workflow_version=_optional_int(obj, "workflowVersion"),
            replayed=replayed,
            raw=obj,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventTrigger:
    """An event trigger (a durable wait) as ``GET /v1/events/{key}`` shows it.

    ``status`` is ``waiting``, ``received``, ``timed_out`` or ``canceled``; ``source_type`` is
    ``workflow_step`` (a ``wait_for_event`` step) or ``job_run`` (a standalone wait).
    """

    id: str
    event_key: str
    project_id: str | None
    source_type: str | None
    workflow_run_id: str | None
    workflow_step_run_id: str | None
    job_run_id: str | None
    status: str
    request_payload: JSON
    response_payload: JSON
    timeout_secs: float | None
    requested_at: datetime | None
    received_at: datetime | None
    expires_at: datetime | None
    error: str | None
    sent_by: str | None
    raw: JSONObject = field(repr=False, compare=False)

    @property
    def ended(self) -> bool:
        """No longer ``waiting``: it will not change again."""
        return self.status != "waiting"

    @classmethod
    def from_json(cls, data: JSON) -> EventTrigger:
        obj = _object(data)
        timeout = obj.get("timeout_secs")
        return cls(
            id=_required_str(obj, "id"),
            event_key=_required_str(obj, "event_key"),
            project_id=_optional_str(obj, "project_id"),
            source_type=_optional_str(obj, "source_type"),
            workflow_run_id=_optional_str(obj, "workflow_run_id"),
            workflow_step_run_id=_optional_str(obj, "workflow_step_run_id"),
            job_run_id=_optional_str(obj, "job_run_id"),
            status=_required_str(obj, "status"),
            request_payload=obj.get("request_payload"),
            response_payload=obj.get("response_payload"),
            timeout_secs=(
                float(timeout)
                if isinstance(timeout, int | float) and not isinstance(timeout, bool)
                else None
            ),
            requested_at=_timestamp(obj, "requested_at"),
            received_at=_timestamp(obj, "received_at"),
            expires_at=_timestamp(obj, "expires_at"),
            error=_optional_str(obj, "error"),
            sent_by=_optional_str(obj, "sent_by"),
            raw=obj,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferedEvent:
    """The 202 reply to a send with ``buffer_secs`` that nothing waited for yet: the event is
    kept, and the first wait on ``event_key`` opened before ``expires_at`` receives it at once."""

    event_key: str
    expires_at: datetime | None
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JSON) -> BufferedEvent:
        obj = _object(data)
        return cls(
            event_key=_required_str(obj, "event_key"),
            expires_at=_timestamp(obj, "expires_at"),
            raw=obj,
        )


def _required_str(obj: JSONObject, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ApiError(f"expected a string {name!r} in the reply", code="INVALID_RESPONSE")
    return value


def _optional_str(obj: JSONObject, name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None


def _optional_int(obj: JSONObject, name: str) -> int | None:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_object(obj: JSONObject, name: str) -> JSONObject | None:
    value = obj.get(name)
    return value if isinstance(value, dict) else None


def _timestamp(obj: JSONObject, name: str) -> datetime | None:
    value = obj.get(name)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(f"{name!r} is not an ISO-8601 time", code="INVALID_RESPONSE") from exc


# -- retries (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How 429 and 503 replies are retried: never more than ``max_retries`` times, and never
    when the wait asked for (``Retry-After``, else ``backoff`` doubling) exceeds ``max_delay``."""

    max_retries: int = 3
    max_delay: float = 60.0
    backoff: float = 0.5


def retry_delay(
    *,
    status: int,
    code: str | None,
    retry_after: str | None,
    attempt: int,
    retryable: bool,
    policy: RetryPolicy,
    now: datetime,
) -> float | None:
    """Seconds to wait before repeating a request that got ``status``, or None: do not repeat.

    ``attempt`` counts the retries already made. Only 429 (but not ``QUOTA_EXCEEDED``: a day's
    quota does not come back in seconds) and 503 are retried, and only requests that are safe to
    repeat (``retryable``).
    """
    if not retryable or attempt >= policy.max_retries:
        return None
    if status != 503 and (status != 429 or code == QuotaExceeded.code):
        return None
    wanted = parse_retry_after(retry_after, now=now)
    delay = policy.backoff * 2**attempt if wanted is None else wanted
    return delay if delay <= policy.max_delay else None


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


# -- the sans-I/O core ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    """An effect: send this request and hand back the ``httpx.Response``."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json: object = None
    headers: dict[str, str] = field(default_factory=dict)
    wait: float | bool | None = None  # the server may hold the reply this long
    retryable: bool = False
    strait: bool = False  # a /v1/events… call: Strait's bodies, not the native envelope


@dataclass(frozen=True, slots=True)
class _Sleep:
    """An effect: sleep this many seconds."""

    seconds: float


_Effect: TypeAlias = _Request | _Sleep
#: What the SDK accepts as a JSON object: any mapping (``dict[str, JSON]`` is invariant, so a
#: caller's ``dict[str, list[str]]`` would not pass); httpx serialises it and refuses non-JSON.
Body: TypeAlias = Mapping[str, object]
Flow: TypeAlias = Generator[_Effect, Any, T]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reply:
    """A success envelope with the response headers the parsers need."""

    envelope: JSONObject
    headers: httpx.Headers

    @property
    def data(self) -> JSON:
        return self.envelope.get("data")


def _segment(value: str) -> str:
    """One path segment: workflow names may hold spaces and other characters."""
    return quote(value, safe="")


def _wait_header(wait: float | bool) -> str:
    if isinstance(wait, bool):
        return "true" if wait else "false"
    return f"{wait:g}"


def _params(**values: str | int | None) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _get(path: str, **kwargs: Any) -> _Request:
    return _Request(method="GET", path=path, retryable=True, **kwargs)


def _post(path: str, *, retryable: bool = False, **kwargs: Any) -> _Request:
    # A POST is repeated only when repeating cannot do its work twice: the 503 (or a proxy's
    # 429) may have come after the server recorded a run or a key, and a blind retry would then
    # start a second run. An idempotency key makes the server answer the retry with the run
    # the first attempt started, so a run start carrying one is safe.
    return _Request(method="POST", path=path, retryable=retryable, **kwargs)


def _run_body(
    input: Body | None,
    *,
    env: Mapping[str, str] | None,
    idempotency_key: str | None,
    priority: int | None,
    connection_id: str | None,
) -> dict[str, object]:
    body: dict[str, object] = {}
    if input is not None:
        body["input"] = dict(input)
    if env is not None:
        body["env"] = dict(env)
    if idempotency_key is not None:
        body["idempotencyKey"] = idempotency_key
    if priority is not None:
        body["priority"] = priority
    if connection_id is not None:
        body["connectionId"] = connection_id
    return body


def _data_object(reply: _Reply) -> JSONObject:
    return _object(reply.data)


def _data_array(reply: _Reply) -> list[JSON]:
    data = reply.data
    if not isinstance(data, list):
        raise ApiError("expected a JSON array as data", code="INVALID_RESPONSE")
    return data


def _whole(reply: _Reply) -> JSONObject:
    return reply.envelope


def _run(reply: _Reply) -> Run:
    return Run.from_json(reply.data)


def _started(reply: _Reply) -> StartedRun:
    replayed = reply.headers.get("idempotent-replayed", "").lower() == "true"
    return StartedRun.from_json(reply.data, replayed=replayed)


def _event(reply: _Reply) -> EventTrigger:
    return EventTrigger.from_json(reply.data)


def _sent(reply: _Reply) -> EventTrigger | BufferedEvent:
    """A send's reply: the trigger it resolved, or (202) the event kept for a later wait."""
    data = _object(reply.data)
    return BufferedEvent.from_json(data) if data.get("buffered") is True else _event(reply)


def _events_path(key: str, suffix: str = "") -> str:
    # Keys may hold "/", "?", "%": one quoted segment, which the server reads back whole.
    return f"/v1/events/{_segment(key)}{suffix}"


def _started_or_run(reply: _Reply) -> StartedRun | Run:
    """A waited start answers with the whole run (finished or so far), else the start shape."""
    data = _object(reply.data)
    return Run.from_json(data) if "id" in data else _started(reply)


def _object(data: JSON) -> JSONObject:
    if not isinstance(data, dict):
        raise ApiError("expected a JSON object as data", code="INVALID_RESPONSE")
    return data


def _decode(response: httpx.Response, *, strait: bool = False) -> JSONObject:
    """The envelope; a reply that is not one raises ApiError (``HTTP_<status>``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if strait:
        return _strait_envelope(response, body)
    if isinstance(body, dict) and isinstance(body.get("success"), bool):
        return body
    raise _unexpected(response)


#: Strait's error codes (DESIGN §6) as the SDK's own, so one ``except NotFound`` (and one
#: ``exc.code == "NOT_FOUND"``) serves a native call and an event call alike.
_STRAIT_CODES = {
    "bad_request": InvalidRequest.code,
    "authentication_required": Unauthorized.code,
    "forbidden": Forbidden.code,
    "not_found": NotFound.code,
    "conflict": Conflict.code,
    "rate_limited": RateLimited.code,
    "internal_error": Internal.code,
}
# Strait has no code for these statuses (flowgate answers them with its catch-all
# ``bad_request``): the status says more than the code.
_STRAIT_STATUSES = {
    405: MethodNotAllowed.code,
    413: PayloadTooLarge.code,
    415: UnsupportedMediaType.code,
}


def _strait_envelope(response: httpx.Response, body: object) -> JSONObject:
    """A Strait reply as a native envelope: a success body becomes ``data``; an error body
    ``{"error": {"code", "message", "details"?}, "request_id"}`` becomes the native error."""
    if response.is_success and isinstance(body, dict):
        return {"success": True, "data": body}
    error = body.get("error") if isinstance(body, dict) else None
    if response.is_success or not isinstance(error, dict) or not isinstance(error.get("code"), str):
        raise _unexpected(response)
    wire = str(error["code"])
    code = _STRAIT_STATUSES.get(response.status_code) or _STRAIT_CODES.get(wire, wire)
    envelope: JSONObject = {"success": False, "error": {**error, "code": code}}
    request_id = body.get("request_id") if isinstance(body, dict) else None
    if isinstance(request_id, str):
        envelope["request_id"] = request_id
    return envelope


def _unexpected(response: httpx.Response) -> ApiError:
    snippet = response.text[:200].strip()
    return ApiError(
        f"unexpected reply (HTTP {response.status_code}) from {response.request.url}"
        + (f": {snippet}" if snippet else ""),
        code="INVALID_RESPONSE" if response.is_success else f"HTTP_{response.status_code}",
        status=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def _error_code(envelope: JSONObject | None) -> str | None:
    error = envelope.get("error") if envelope else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _error_of(response: httpx.Response, envelope: JSONObject) -> ApiError:
    """The ApiError subclass the envelope's ``error.code`` names."""
    error = envelope.get("error")
    if not isinstance(error, dict):
        error = {}
    code = _error_code(envelope) or f"HTTP_{response.status_code}"
    message = error.get("message")
    exc = error_class(code)(
        message if isinstance(message, str) else f"HTTP {response.status_code}",
        code=code,
        status=response.status_code,
        details=error.get("details"),
        request_id=response.headers.get("x-request-id") or _optional_str(envelope, "request_id"),
    )
    if isinstance(exc, RateLimited):
        exc.retry_after = parse_retry_after(
            response.headers.get("retry-after"), now=datetime.now(UTC)
        )
    return exc


class _EventStreamReader:
    """Sans-I/O reader of a ``text/event-stream``: fed one line at a time, it hands back each
    complete ``(event, data)`` frame (comments such as keep-alive pings are dropped)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            frame = (self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = "message", []
            return frame
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def _stream_request(run_id: str) -> _Request:
    return _get(f"/api/v1/runs/{_segment(run_id)}/stream", headers={"accept": "text/event-stream"})


def _stream_error(response: httpx.Response) -> ApiError:
    """A refused stream (an unknown run, a missing scope) raises like any other call."""
    return _error_of(response, _decode(response))


def _streamed_run(frame: tuple[str, str]) -> Run | None:
    event, data = frame
    return Run.from_json(json.loads(data)) if event == "run" else None


def _unreachable(url: str, exc: httpx.TransportError) -> ApiError:
    return ApiError(
        f"cannot reach flowgate at {url}: {exc or type(exc).__name__}", code="CONNECTION_ERROR"
    )


class _Calls:
    """Every API call, described once as a flow; both clients only perform its effects."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.wall_clock = wall_clock

    def exchange(self, request: _Request) -> Flow[_Reply]:
        """One request, repeated on 429/503 as the policy allows; the success reply or raise."""
        attempt = 0
        while True:
            response: httpx.Response = yield request
            envelope = None
            if response.status_code not in (429, 503):
                envelope = _decode(response, strait=request.strait)
            else:
                try:
                    envelope = _decode(response, strait=request.strait)
                except ApiError:
                    envelope = None  # a proxy's 503 page: retry it like the server's own
            delay = retry_delay(
                status=response.status_code,
                code=_error_code(envelope),
                retry_after=response.headers.get("retry-after"),
                attempt=attempt,
                retryable=request.retryable,
                policy=self.policy,
                now=self.wall_clock(),
            )
            if delay is not None:
                attempt += 1
                yield _Sleep(delay)
                continue
            if envelope is None:
                envelope = _decode(response, strait=request.strait)
            if envelope.get("success") is not True:
                raise _error_of(response, envelope)
            return _Reply(envelope=envelope, headers=response.headers)

    def call(self, request: _Request, parse: Callable[[_Reply], T]) -> Flow[T]:
        return parse((yield from self.exchange(request)))

    # -- workflows ---------------------------------------------------------------------------

    def create_workflow(self, definition: Body) -> Flow[JSONObject]:
        return self.call(_post("/api/v1/workflows", json=definition), _data_object)

    def get_workflow(self, id_or_name: str) -> Flow[JSONObject]:
        return self.call(_get(f"/api/v1/workflows/{_segment(id_or_name)}"), _data_object)

    def update_workflow(self, workflow_id: str, definition: Body) -> Flow[JSONObject]:
        path = f"/api/v1/workflows/{_segment(workflow_id)}"
        request = _Request(method="PUT", path=path, json=definition, retryable=True)
        return self.call(request, _data_object)

    def list_workflows(self, *, limit: int | None, cursor: str | None) -> Flow[list[JSON]]:
        request = _get("/api/v1/workflows", params=_params(limit=limit, cursor=cursor))
        return self.call(request, _data_array)

    def activate_workflow(self, workflow_id: str) -> Flow[JSONObject]:
        path = f"/api/v1/workflows/{_segment(workflow_id)}/activate"
        return self.call(_post(path, retryable=True), _data_object)  # setting a status: idempotent

    def pause_workflow(self, workflow_id: str) -> Flow[JSONObject]:
        path = f"/api/v1/workflows/{_segment(workflow_id)}/pause"
        return self.call(_post(path, retryable=True), _data_object)

    def apply_workflow(self, definition: Body, *, activate: bool) -> Flow[JSONObject]:
        """Update the workflow its ``id`` (or ``name``) names if it exists, else create it."""
        existing = yield from self._find_workflow(definition.get("id") or definition.get("name"))
        if existing is None:
            row = yield from self.create_workflow(definition)
        else:
            row = yield from self.update_workflow(str(existing["id"]), definition)
        if activate and row.get("status") != "active":
            row = yield from self.activate_workflow(str(row["id"]))
        return row

    def _find_workflow(self, id_or_name: object) -> Flow[JSONObject | None]:
        if not isinstance(id_or_name, str) or not id_or_name:
            return None
        try:
            return (yield from self.get_workflow(id_or_name))
        except NotFound:
            return None

    # -- runs --------------------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        body: Body,
        *,
        wait: float | bool | None,
    ) -> Flow[_Reply]:
        headers = {} if wait is None else {"x-api-wait": _wait_header(wait)}
        request = _post(
            f"/api/v1/workflows/{_segment(workflow)}/run",
            json=body,
            headers=headers,
            wait=None if wait is None or wait is False else wait,
            retryable="idempotencyKey" in body,
        )
        return self.exchange(request)

    def start_run(
        self, workflow: str, body: Body, *, wait: float | bool | None
    ) -> Flow[JSONObject]:
        return _data_object((yield from self.start(workflow, body, wait=wait)))

    def run(self, workflow: str, body: Body, *, wait: float | bool) -> Flow[StartedRun | Run]:
        if not isinstance(wait, bool) and not wait > 0:
            raise ValueError("wait must be True, False or a positive number of seconds")
        reply = yield from self.start(workflow, body, wait=wait if wait is not False else None)
        return _started_or_run(reply) if wait is not False else _started(reply)

    def get_run(self, run_id: str, *, wait_secs: float | None) -> Flow[Run]:
        params = _params(waitSecs=None if wait_secs is None else f"{wait_secs:g}")
        request = _get(f"/api/v1/runs/{_segment(run_id)}", params=params, wait=wait_secs)
        return self.call(request, _run)

    def wait_for_run(self, run_id: str, *, timeout: float) -> Flow[Run]:
        """Long-poll until the run ends or ``timeout`` seconds pass; the run as it then is."""
        deadline = self.clock() + timeout
        while True:
            started = self.clock()
            poll = max(0.0, min(deadline - started, _LONG_POLL_SECS))
            run = yield from self.get_run(run_id, wait_secs=poll or None)
            if run.ended or self.clock() >= deadline:
                return run
            pause = min(_MIN_POLL_INTERVAL_SECS - (self.clock() - started), deadline - self.clock())
            if pause > 0:
                yield _Sleep(pause)

    def list_runs(self, filters: Mapping[str, str | int | None]) -> Flow[JSONObject]:
        return self.call(_get("/api/v1/runs", params=_params(**filters)), _whole)

    def cancel_run(self, run_id: str) -> Flow[Run]:
        return self.call(_post(f"/api/v1/runs/{_segment(run_id)}/cancel"), _run)

    def replay(self, run_id: str) -> Flow[StartedRun]:
        return self.call(_post(f"/api/v1/runs/{_segment(run_id)}/replay"), _started)

    def rerun(self, run_id: str) -> Flow[StartedRun]:
        return self.call(_post(f"/api/v1/runs/{_segment(run_id)}/rerun"), _started)

    # -- events (the Strait-style API) ---------------------------------------------------------

    def send_event(
        self,
        key: str,
        payload: object,
        *,
        buffer_secs: float | None,
        idempotency_key: str | None,
    ) -> Flow[EventTrigger | BufferedEvent]:
        # Safe to repeat: the server answers a resend of an equal payload (or of the same
        # Idempotency-Key) with the trigger it resolved, 200, not a second delivery.
        request = _post(
            _events_path(key, "/send"),
            json={"payload": payload},
            params=_params(buffer_secs=None if buffer_secs is None else f"{buffer_secs:g}"),
            headers={} if idempotency_key is None else {"idempotency-key": idempotency_key},
            retryable=True,
            strait=True,
        )
        return self.call(request, _sent)

    def get_event(self, key: str) -> Flow[EventTrigger]:
        return self.call(_get(_events_path(key), strait=True), _event)

    def cancel_event(self, key: str) -> Flow[EventTrigger]:
        request = _Request(method="DELETE", path=_events_path(key), retryable=True, strait=True)
        return self.call(request, _event)

    def list_events(self, filters: Mapping[str, str | int | None]) -> Flow[JSONObject]:
        return self.call(_get("/v1/events", params=_params(**filters), strait=True), _data_object)

    # -- keys --------------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        project_id: str | None,
        expires_at: str | datetime | None,
        rate_limit_per_minute: int | None,
    ) -> Flow[JSONObject]:
        body: JSONObject = {"name": name, "scopes": list(scopes)}
        if project_id is not None:
            body["projectId"] = project_id
        if expires_at is not None:
            body["expiresAt"] = (
                expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
            )
        if rate_limit_per_minute is not None:
            body["rateLimitPerMinute"] = rate_limit_per_minute
        return self.call(_post("/api/v1/keys", json=body), _data_object)

    def list_keys(self) -> Flow[list[JSON]]:
        return self.call(_get("/api/v1/keys"), _data_array)

    def revoke_key(self, key_id: str) -> Flow[JSONObject]:
        path = f"/api/v1/keys/{_segment(key_id)}"
        return self.call(_Request(method="DELETE", path=path, retryable=True), _data_object)


# -- the two drivers ------------------------------------------------------------------------------


class _Base:
    """What both clients share: configuration, headers, and how a request becomes httpx kwargs."""

    def __init__(
        self,
        url: str | None,
        key: str | None,
        *,
        timeout: float,
        max_retries: int,
        source: str | None,
    ) -> None:
        self.url = (url or os.environ.get("FLOWGATE_URL") or DEFAULT_URL).rstrip("/")
        key = key or os.environ.get("FLOWGATE_API_KEY")
        self.headers = {"accept": "application/json", "user-agent": "flowgate-client"}
        if key:
            self.headers["x-api-key"] = key
        if source:
            self.headers[SOURCE_HEADER] = source
        self.timeout = timeout
        self._calls = _Calls(RetryPolicy(max_retries=max_retries))

    def _httpx_kwargs(self, request: _Request) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "params": request.params,
            "json": request.json,
            "headers": request.headers,
        }
        timeout = self._wait_timeout(request.wait)
        if timeout is not None:
            kwargs["timeout"] = timeout
        return kwargs

    def _wait_timeout(self, wait: float | bool | None) -> httpx.Timeout | None:
        """A waiting request may take as long as the wait: ``True`` means the server's cap."""
        if wait is None or wait is False:
            return None
        if wait is True:
            return httpx.Timeout(self.timeout, read=None)
        return httpx.Timeout(self.timeout, read=self.timeout + float(wait) + _WAIT_MARGIN_SECS)


class Client(_Base):
    """A flowgate server, synchronously: ``url`` defaults to FLOWGATE_URL, ``key`` to
    FLOWGATE_API_KEY. ``source`` (``cli`` or ``api``) is recorded on the runs it starts."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        source: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, key, timeout=timeout, max_retries=max_retries, source=source)
        self._http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
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

    def _drive(self, flow: Flow[T]) -> T:
        """Perform the flow's effects until it returns."""
        reply: object = None
        error: BaseException | None = None
        while True:
            try:
                effect = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            if isinstance(effect, _Sleep):
                time.sleep(effect.seconds)
                continue
            try:
                reply = self._http.request(effect.method, effect.path, **self._httpx_kwargs(effect))
            except httpx.TransportError as exc:
                error = _unreachable(self.url, exc)

    # -- workflows ---------------------------------------------------------------------------

    def create_workflow(self, definition: Body) -> JSONObject:
        return self._drive(self._calls.create_workflow(definition))

    def get_workflow(self, id_or_name: str) -> JSONObject:
        return self._drive(self._calls.get_workflow(id_or_name))

    def update_workflow(self, workflow_id: str, definition: Body) -> JSONObject:
        return self._drive(self._calls.update_workflow(workflow_id, definition))

    def list_workflows(self, *, limit: int | None = None, cursor: str | None = None) -> list[JSON]:
        return self._drive(self._calls.list_workflows(limit=limit, cursor=cursor))

    def activate_workflow(self, workflow_id: str) -> JSONObject:
        return self._drive(self._calls.activate_workflow(workflow_id))

    def pause_workflow(self, workflow_id: str) -> JSONObject:
        return self._drive(self._calls.pause_workflow(workflow_id))

    def apply_workflow(self, definition: Body, *, activate: bool = True) -> JSONObject:
        """Update the workflow its ``id`` (or ``name``) names if it exists, else create it."""
        return self._drive(self._calls.apply_workflow(definition, activate=activate))

    # -- runs --------------------------------------------------------------------------------

    @overload
    def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: Literal[False] = False,
    ) -> StartedRun: ...

    @overload
    def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: Literal[True] | float,
    ) -> Run: ...

    def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: float | bool = False,
    ) -> StartedRun | Run:
        """Start a run: the StartedRun, or with ``wait`` (True: the server's cap, or seconds)
        the Run, finished or as it is when the wait ended."""
        body = _run_body(
            input,
            env=env,
            idempotency_key=idempotency_key,
            priority=priority,
            connection_id=connection_id,
        )
        return self._drive(self._calls.run(workflow, body, wait=wait))

    def start_run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: float | bool | None = None,
    ) -> JSONObject:
        """``run`` with the reply's ``data`` as a dict (the CLI prints it as the server sent it)."""
        body = _run_body(
            input,
            env=env,
            idempotency_key=idempotency_key,
            priority=priority,
            connection_id=connection_id,
        )
        return self._drive(self._calls.start_run(workflow, body, wait=wait))

    def get_run(self, run_id: str, *, wait_secs: float | None = None) -> Run:
        """The run with its steps; ``wait_secs`` long-polls once until it ends or that passes."""
        return self._drive(self._calls.get_run(run_id, wait_secs=wait_secs))

    def wait_for_run(self, run_id: str, *, timeout: float) -> Run:
        """Long-poll until the run ends or ``timeout`` seconds pass (check ``Run.ended``)."""
        return self._drive(self._calls.wait_for_run(run_id, timeout=timeout))

    def follow_run(self, run_id: str) -> Iterator[Run]:
        """The run each time its status or a step changes (``GET …/stream``), until it ends;
        the stream may also stop early (a server restarting), so check ``Run.ended``."""
        request = _stream_request(run_id)
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream(
                "GET", request.path, headers=request.headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise _stream_error(response)
                reader = _EventStreamReader()
                for line in response.iter_lines():
                    frame = reader.feed(line)
                    run = None if frame is None else _streamed_run(frame)
                    if run is not None:
                        yield run
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc

    def list_runs(self, **filters: str | int | None) -> JSONObject:
        """One page: ``{data, hasMore, nextCursor}``; filters as the API names them
        (``workflowId``, ``status``, ``source``, ``createdAfter``, ``limit``, ``cursor``)."""
        return self._drive(self._calls.list_runs(filters))

    def cancel_run(self, run_id: str) -> Run:
        return self._drive(self._calls.cancel_run(run_id))

    def replay(self, run_id: str) -> StartedRun:
        """A new run with the same input and version (source ``replay``)."""
        return self._drive(self._calls.replay(run_id))

    def rerun(self, run_id: str) -> StartedRun:
        """A new run from the failed step (source ``rerun``)."""
        return self._drive(self._calls.rerun(run_id))

    # -- events (the Strait-style API, /v1/events) -------------------------------------------

    def send_event(
        self,
        key: str,
        payload: object = None,
        *,
        buffer_secs: float | None = None,
        idempotency_key: str | None = None,
    ) -> EventTrigger | BufferedEvent:
        """Send ``payload`` (any JSON) to the key's waiting trigger; the trigger comes back
        ``received``, and the step waiting on it completes with the payload as its output. When
        nothing waits yet, ``buffer_secs`` (else the project's default, if it has one) keeps the
        event that long for the first wait on the key: a BufferedEvent."""
        return self._drive(
            self._calls.send_event(
                key, payload, buffer_secs=buffer_secs, idempotency_key=idempotency_key
            )
        )

    def get_event(self, key: str) -> EventTrigger:
        """The key's waiting trigger, else its newest."""
        return self._drive(self._calls.get_event(key))

    def cancel_event(self, key: str) -> EventTrigger:
        """Cancel the key's waiting trigger: a step waiting on it ends ``canceled``."""
        return self._drive(self._calls.cancel_event(key))

    def list_events(
        self,
        *,
        status: str | None = None,
        workflow_run_id: str | None = None,
        source_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        project_id: str | None = None,
    ) -> JSONObject:
        """One page of event triggers, newest first: ``{data, has_more, next_cursor}``."""
        filters = {
            "status": status,
            "workflow_run_id": workflow_run_id,
            "source_type": source_type,
            "limit": limit,
            "cursor": cursor,
            "project_id": project_id,
        }
        return self._drive(self._calls.list_events(filters))

    # -- keys --------------------------------------------------------------------------------

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
        return self._drive(
            self._calls.create_key(
                name,
                scopes,
                project_id=project_id,
                expires_at=expires_at,
                rate_limit_per_minute=rate_limit_per_minute,
            )
        )

    def list_keys(self) -> list[JSON]:
        return self._drive(self._calls.list_keys())

    def revoke_key(self, key_id: str) -> JSONObject:
        return self._drive(self._calls.revoke_key(key_id))


class AsyncClient(_Base):
    """:class:`Client`'s twin for asyncio: the same methods, each a coroutine."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        source: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, key, timeout=timeout, max_retries=max_retries, source=source)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _drive(self, flow: Flow[T]) -> T:
        """Perform the flow's effects until it returns."""
        reply: object = None
        error: BaseException | None = None
        while True:
            try:
                effect = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            if isinstance(effect, _Sleep):
                await asyncio.sleep(effect.seconds)
                continue
            try:
                reply = await self._http.request(
                    effect.method, effect.path, **self._httpx_kwargs(effect)
                )
            except httpx.TransportError as exc:
                error = _unreachable(self.url, exc)

    # -- workflows ---------------------------------------------------------------------------

    async def create_workflow(self, definition: Body) -> JSONObject:
        return await self._drive(self._calls.create_workflow(definition))

    async def get_workflow(self, id_or_name: str) -> JSONObject:
        return await self._drive(self._calls.get_workflow(id_or_name))

    async def update_workflow(self, workflow_id: str, definition: Body) -> JSONObject:
        return await self._drive(self._calls.update_workflow(workflow_id, definition))

    async def list_workflows(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> list[JSON]:
        return await self._drive(self._calls.list_workflows(limit=limit, cursor=cursor))

    async def activate_workflow(self, workflow_id: str) -> JSONObject:
        return await self._drive(self._calls.activate_workflow(workflow_id))

    async def pause_workflow(self, workflow_id: str) -> JSONObject:
        return await self._drive(self._calls.pause_workflow(workflow_id))

    async def apply_workflow(self, definition: Body, *, activate: bool = True) -> JSONObject:
        """Update the workflow its ``id`` (or ``name``) names if it exists, else create it."""
        return await self._drive(self._calls.apply_workflow(definition, activate=activate))

    # -- runs --------------------------------------------------------------------------------

    @overload
    async def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: Literal[False] = False,
    ) -> StartedRun: ...

    @overload
    async def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: Literal[True] | float,
    ) -> Run: ...

    async def run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: float | bool = False,
    ) -> StartedRun | Run:
        """Start a run: the StartedRun, or with ``wait`` (True: the server's cap, or seconds)
        the Run, finished or as it is when the wait ended."""
        body = _run_body(
            input,
            env=env,
            idempotency_key=idempotency_key,
            priority=priority,
            connection_id=connection_id,
        )
        return await self._drive(self._calls.run(workflow, body, wait=wait))

    async def start_run(
        self,
        workflow: str,
        input: Body | None = None,
        *,
        env: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        connection_id: str | None = None,
        wait: float | bool | None = None,
    ) -> JSONObject:
        """``run`` with the reply's ``data`` as a dict (the CLI prints it as the server sent it)."""
        body = _run_body(
            input,
            env=env,
            idempotency_key=idempotency_key,
            priority=priority,
            connection_id=connection_id,
        )
        return await self._drive(self._calls.start_run(workflow, body, wait=wait))

    async def get_run(self, run_id: str, *, wait_secs: float | None = None) -> Run:
        """The run with its steps; ``wait_secs`` long-polls once until it ends or that passes."""
        return await self._drive(self._calls.get_run(run_id, wait_secs=wait_secs))

    # ``timeout`` bounds the server-side long-polls, as in the sync twin: not a local deadline.
    async def wait_for_run(self, run_id: str, *, timeout: float) -> Run:  # noqa: ASYNC109
        """Long-poll until the run ends or ``timeout`` seconds pass (check ``Run.ended``)."""
        return await self._drive(self._calls.wait_for_run(run_id, timeout=timeout))

    async def follow_run(self, run_id: str) -> AsyncIterator[Run]:
        """The run each time its status or a step changes (``GET …/stream``), until it ends;
        the stream may also stop early (a server restarting), so check ``Run.ended``."""
        request = _stream_request(run_id)
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            async with self._http.stream(
                "GET", request.path, headers=request.headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _stream_error(response)
                reader = _EventStreamReader()
                async for line in response.aiter_lines():
                    frame = reader.feed(line)
                    run = None if frame is None else _streamed_run(frame)
                    if run is not None:
                        yield run
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc

    async def list_runs(self, **filters: str | int | None) -> JSONObject:
        """One page: ``{data, hasMore, nextCursor}``; filters as the API names them
        (``workflowId``, ``status``, ``source``, ``createdAfter``, ``limit``, ``cursor``)."""
        return await self._drive(self._calls.list_runs(filters))

    async def cancel_run(self, run_id: str) -> Run:
        return await self._drive(self._calls.cancel_run(run_id))

    async def replay(self, run_id: str) -> StartedRun:
        """A new run with the same input and version (source ``replay``)."""
        return await self._drive(self._calls.replay(run_id))

    async def rerun(self, run_id: str) -> StartedRun:
        """A new run from the failed step (source ``rerun``)."""
        return await self._drive(self._calls.rerun(run_id))

    # -- events (the Strait-style API, /v1/events) -------------------------------------------

    async def send_event(
        self,
        key: str,
        payload: object = None,
        *,
        buffer_secs: float | None = None,
        idempotency_key: str | None = None,
    ) -> EventTrigger | BufferedEvent:
        """Send ``payload`` (any JSON) to the key's waiting trigger; the trigger comes back
        ``received``, and the step waiting on it completes with the payload as its output. When
        nothing waits yet, ``buffer_secs`` (else the project's default, if it has one) keeps the
        event that long for the first wait on the key: a BufferedEvent."""
        return await self._drive(
            self._calls.send_event(
                key, payload, buffer_secs=buffer_secs, idempotency_key=idempotency_key
            )
        )

    async def get_event(self, key: str) -> EventTrigger:
        """The key's waiting trigger, else its newest."""
        return await self._drive(self._calls.get_event(key))

    async def cancel_event(self, key: str) -> EventTrigger:
        """Cancel the key's waiting trigger: a step waiting on it ends ``canceled``."""
        return await self._drive(self._calls.cancel_event(key))

    async def list_events(
        self,
        *,
        status: str | None = None,
        workflow_run_id: str | None = None,
        source_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        project_id: str | None = None,
    ) -> JSONObject:
        """One page of event triggers, newest first: ``{data, has_more, next_cursor}``."""
        filters = {
            "status": status,
            "workflow_run_id": workflow_run_id,
            "source_type": source_type,
            "limit": limit,
            "cursor": cursor,
            "project_id": project_id,
        }
        return await self._drive(self._calls.list_events(filters))

    # -- keys --------------------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        project_id: str | None = None,
        expires_at: str | datetime | None = None,
        rate_limit_per_minute: int | None = None,
    ) -> JSONObject:
        """The new key, with its secret in ``key``: the only time the server shows it."""
        return await self._drive(
            self._calls.create_key(
                name,
                scopes,
                project_id=project_id,
                expires_at=expires_at,
                rate_limit_per_minute=rate_limit_per_minute,
            )
        )

    async def list_keys(self) -> list[JSON]:
        return await self._drive(self._calls.list_keys())

    async def revoke_key(self, key_id: str) -> JSONObject:
        return await self._drive(self._calls.revoke_key(key_id))
