"""Step types are plug-ins: one module each, registered by name with ``@register_step``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol, TypeVar

import httpx

from flowgate.clock import Clock
from flowgate.engine.functions import FunctionRegistry
from flowgate.types import JSON, JSONObject


@dataclass(frozen=True, slots=True)
class Problem:
    """A write-time problem in a definition: where (path) and what (message)."""

    path: list[str | int]
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """What a step type may consult while checking a step at write time."""

    functions: FunctionRegistry


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpContext:
    """The process's one outbound HTTP client and the rules it follows.

    ``client`` is built on ``netguard.guarded_transport``, which decides at connect time where
    it may go (``FLOWGATE_HTTP_ALLOW_PRIVATE``); ``timeout_secs`` bounds a whole exchange,
    redirects included, and ``max_response_bytes`` each response body.
    """

    client: httpx.AsyncClient
    max_response_bytes: int = 5_242_880
    timeout_secs: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionView:
    """A connection with its credentials decrypted, for the step that uses it only."""

    id: str
    type: str
    config: JSONObject
    credentials: JSONObject


class Connections(Protocol):
    async def get(
        self, project_id: str, connection_id: str, *, provider: str
    ) -> ConnectionView | None:
        """The connection, or None when it does not exist in the project. Its credentials are
        decrypted only when it is a ``provider`` connection (otherwise they are ``{}``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpDefaults:
    """``FLOWGATE_SMTP_*``: the mail server used when no smtp connection is chosen."""

    host: str | None = None
    port: int = 25
    sender: str | None = None
    username: str | None = None
    password: str | None = None
    starttls: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StepContext:
    """What a running step knows about its run. ``idempotency_key`` is stable across attempts.

    ``state`` is what the step handed to :class:`StepWait` last time, when it is resumed after a
    durable wait; ``None`` on a first execution.
    """

    run_id: str
    step_id: str
    attempt: int
    project_id: str
    env: dict[str, str]
    connection: JSONObject | None
    functions: FunctionRegistry
    clock: Clock
    http: HttpContext
    children: Children | None = None
    connections: Connections | None = None
    run_connection_id: str | None = None
    step_connection_id: str | None = None
    action: str | None = None
    smtp: SmtpDefaults = field(default_factory=SmtpDefaults)
    idempotency_key: str = field(default="")
    state: JSON = None
    events: Events | None = None


class StepFailure(Exception):
    """A step failed in an expected way; ``code`` becomes the run's ``error.code``, ``status``
    the step's (``failed``, ``timed_out`` or ``canceled``). ``output`` is kept on the failed
    attempt to show why (an ``http`` step's response); the executor masks secrets in it."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "STEP_FAILED",
        status: str = "failed",
        output: JSON = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.output = output


def default_connection_id(provider: str) -> str:
    """The connection a step of ``provider`` uses when neither it nor its run names one."""
    return f"conn_default_{provider}"


async def connection_for(ctx: StepContext, provider: str) -> ConnectionView | None:
    """The step's own ``connectionId``, else the run's if it is a ``provider`` connection, else
    the project's ``conn_default_<provider>`` if there is one."""
    if ctx.connections is None:
        return None
    if ctx.step_connection_id is not None:
        found = await ctx.connections.get(ctx.project_id, ctx.step_connection_id, provider=provider)
        if found is None:
            raise StepFailure(f"Connection {ctx.step_connection_id!r} not found")
        if found.type != provider:
            raise StepFailure(f"Connection {found.id!r} is {found.type}, not {provider}")
        return found
    if ctx.run_connection_id is not None:
        found = await ctx.connections.get(ctx.project_id, ctx.run_connection_id, provider=provider)
        if found is not None and found.type == provider:
            return found
    fallback = default_connection_id(provider)
    found = await ctx.connections.get(ctx.project_id, fallback, provider=provider)
    return found if found is not None and found.type == provider else None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventWait:
    """An event trigger a waiting step opens: it waits for an event sent to ``key``."""

    id: str
    key: str
    payload: JSON
    timeout_secs: float
    expires_at: datetime
    #: One of several keys the step waits for (``anyOf``): its output is ``{key, payload}``.
    any_of: bool = False


class StepWait(Exception):
    """The step waits durably until ``until`` (None: until woken, e.g. by ``wait_for_run``
    ending, or by an event sent to one of the ``events`` it opens); the run holds no worker
    meanwhile.

    ``state`` is kept with the step and given back as ``StepContext.state`` when it resumes.
    ``events`` are opened in the same transaction that parks the run.
    """

    def __init__(
        self,
        *,
        until: datetime | None,
        state: JSON = None,
        wait_for_run: str | None = None,
        events: tuple[EventWait, ...] = (),
    ) -> None:
        super().__init__(f"waiting until {until.isoformat() if until else 'woken'}")
        self.until = until
        self.state = state
        self.wait_for_run = wait_for_run
        self.events = events


class Events(Protocol):
    """Reading and timing out the event triggers a step opened, provided by the executor."""

    async def triggers(self, project_id: str, trigger_ids: list[str]) -> list[JSONObject]:
        """The triggers as they are now (``status``, ``response_payload``, ``event_key``…)."""

    async def expire(self, project_id: str, trigger_ids: list[str]) -> list[JSONObject]:
        """Time out those still waiting past their expiry; returns them all as they are then
        (one a send resolved first shows ``received``)."""


class Children(Protocol):
    """Starting and reading child runs, provided to steps by the service layer."""

    async def start(
        self, *, parent: str, project_id: str, key: str, workflow: str, input: JSON
    ) -> JSONObject:
        """Start (or, for the same ``key``, find again) a child run; returns ``{id, status}``.

        Raises StepFailure when the child cannot start."""

    async def get(self, run_id: str) -> JSONObject | None:
        """``{id, status, output, error}`` of a run, or None."""


class StepType(Protocol):
    #: Pure steps change nothing outside the run, so consecutive ones may be committed together.
    pure: ClassVar[bool]
    #: The step acts outside flowgate (calls a service, sends mail, runs operator code): its
    #: attempt is committed as ``running`` before it starts, so an attempt lost with its worker
    #: is seen and recorded (``WORKER_LOST``) instead of silently repeated.
    calls_out: ClassVar[bool]

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        """Problems with ``step`` (its ``config`` included), paths relative to the step."""

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        """Run the step with its rendered ``config``; raise :class:`StepFailure` to fail it."""


STEP_TYPES: dict[str, StepType] = {}
_BUILT_IN = (
    "transform", "python", "fail", "sleep", "http", "run_workflow", "action", "email",
    "wait_for_event",
)  # fmt: skip

S = TypeVar("S")


def register_step(name: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: register one instance of the class as step type ``name``."""

    def decorate(cls: type[S]) -> type[S]:
        if name in STEP_TYPES:
            raise ValueError(f"step type {name!r} is registered twice")
        STEP_TYPES[name] = cls()  # type: ignore[assignment]
        return cls

    return decorate


def load_built_in_steps() -> dict[str, StepType]:
    """Import the built-in step modules (each registers itself) and return the registry."""
    for module in _BUILT_IN:
        importlib.import_module(f"flowgate.engine.steps.{module}")
    return STEP_TYPES
