"""The storage interface every store implements, and the shapes of its rows.

Methods are domain verbs, one transaction each. Hot paths are batch-shaped (``insert_runs``,
``claim_runs(limit=n)``) so that group commit can come without a new interface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypedDict

from sqlalchemy.engine import Connection

from flowgate.statuses import (
    TERMINAL_RUN_STATUSES,
    RunStatus,
    StepStatus,
    WorkflowStatus,
)
from flowgate.types import JSON, JSONObject

__all__ = ["TERMINAL_RUN_STATUSES", "RunStatus", "StepStatus", "WorkflowStatus"]


class Duplicate(Exception):
    """An insert or update hit a unique constraint (an id or a name is taken)."""


class ProjectRow(TypedDict):
    id: str
    org_id: str
    name: str
    run_quota_per_day: int | None
    created_at: datetime
    #: The default ``buffer_secs`` of an event send (None or 0: no buffering).
    event_buffer_secs: int | None


class KeyRow(TypedDict):
    id: str
    project_id: str
    name: str
    prefix: str
    key_hash: str
    scopes: list[str]
    rate_limit_per_minute: int | None
    is_bootstrap: bool
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class WorkflowRow(TypedDict):
    id: str
    project_id: str
    name: str
    status: str
    version: int
    definition: JSONObject
    created_at: datetime
    updated_at: datetime


class WorkflowVersionRow(TypedDict):
    project_id: str
    workflow_id: str
    version: int
    definition: JSONObject
    created_at: datetime


class ConnectionRow(TypedDict):
    id: str
    project_id: str
    name: str
    type: str
    config: JSONObject
    credentials_encrypted: str | None
    created_at: datetime
    updated_at: datetime


class TriggerRow(TypedDict):
    id: str
    project_id: str
    workflow_id: str
    type: str
    name: str | None
    enabled: bool
    #: ``api`` (made through the triggers API) or ``definition`` (the document's ``trigger:``).
    source: str
    config: JSONObject
    token: str | None
    signing_secret_encrypted: str | None
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None


class DeliveryRow(TypedDict):
    """One request to a webhook URL (the inbox); ``headers`` are masked, ``body`` is raw."""

    project_id: str
    id: str
    trigger_id: str
    received_at: datetime
    method: str
    path: str
    query: JSONObject
    headers: JSONObject
    body: bytes | None
    #: ``accepted`` or ``rejected``.
    verdict: str
    reason: str | None
    run_id: str | None
    signature_headers: JSONObject | None
    replay_key: str | None
    workflow_id: str | None
    #: ``webhook`` or the dialect that received the call (``pinkfish``, ``axiom``, ``shipyard``).
    source: str | None
    #: A dialect call's run as translated, ``{input, env, stepEnv}``, to start it again.
    run_start: JSONObject | None


class EventTriggerRow(TypedDict):
    """A durable wait for an outside event (DESIGN §6)."""

    project_id: str
    id: str
    event_key: str
    #: ``workflow_step`` or ``job_run``.
    source_type: str
    workflow_run_id: str | None
    #: The waiting attempt's ``step_runs.id``; the triggers of one ``anyOf`` wait share it.
    workflow_step_run_id: str | None
    job_run_id: str | None
    any_of: bool
    status: str
    request_payload: JSON
    response_payload: JSON
    timeout_secs: float
    requested_at: datetime
    received_at: datetime | None
    expires_at: datetime
    ended_at: datetime | None
    error: str | None
    sent_by: str | None
    idempotency_key: str | None


class EventKeyTaken(Exception):
    """A wait was asked for a key that already has a waiting trigger in the project."""

    def __init__(self, key: str) -> None:
        super().__init__(f"event key {key!r} already has a waiting trigger")
        self.key = key


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    statuses: Sequence[str] = ()
    workflow_run_id: str | None = None
    source_type: str | None = None
    #: Only triggers requested at exactly this instant (a page's tie).
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SentEvent:
    """What a send did: resolved the key's waiting trigger (``trigger``, ``resolved``), found
    none waiting (``trigger`` is the newest one, or None), or kept the event
    (``buffered_until``)."""

    trigger: EventTriggerRow | None
    resolved: bool = False
    buffered_until: datetime | None = None


class FileRow(TypedDict):
    """A stored file part of a multipart webhook call; ``path`` is relative to the data dir."""

    project_id: str
    id: str
    trigger_id: str
    filename: str
    content_type: str
    size: int
    path: str
    created_at: datetime


class RunRow(TypedDict):
    id: str
    project_id: str
    workflow_id: str
    workflow_version: int
    status: str
    input: JSON
    env: dict[str, str]
    output: JSON
    error: JSONObject | None
    source: str
    parent_run_id: str | None
    connection_id: str | None
    priority: int
    concurrency_key: str | None
    queued_reason: JSONObject | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_epoch: int
    #: How often executing this run raised something other than a step's own failure.
    crash_count: int
    #: ``{stepId: {NAME: value}}``: env a single step sees over ``env``, or None.
    step_env: dict[str, dict[str, str]] | None
    #: The run a replay or rerun copies (``source`` says which), or None.
    origin_run_id: str | None
    wake_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStats:
    """One workflow's runs created in one bucket ``[start, start + width)``: how many, how many
    ended, failed and completed, and the summed ``completed_at - started_at`` of the completed
    ones that have both (``timed`` of them)."""

    start: datetime
    workflow_id: str
    runs: int
    ended: int
    failed: int
    completed: int
    timed: int
    duration_ms: int


class StepRunRow(TypedDict):
    id: str
    run_id: str
    step_id: str
    position: int
    attempt: int
    status: str
    output: JSON
    error: JSONObject | None
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyClaim:
    """An idempotency key to reserve for a new run, with the input it was sent with."""

    key: str
    input: JSON
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    row: RunRow
    idempotency: IdempotencyClaim | None = None
    #: A schedule's due time this run is for: inserted with the run, and a due time already
    #: taken answers with its run, like an idempotency key.
    fire: ScheduleFire | None = None
    #: Step outcomes the run starts with (a rerun reuses its original's finished steps).
    steps: Sequence[StepRunRow] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleFire:
    """One due time of one schedule trigger (``schedule_fires``' key with the run's project)."""

    trigger_id: str
    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class InsertedRun:
    """The run that answers an insert: the new one, or the one an idempotency key points to."""

    run: RunRow
    replayed: bool = False
    stored_input: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQuota:
    """A project's allowance: at most ``limit`` runs created since ``since``. With
    ``all_or_nothing``, runs it cannot all take are all refused."""

    project_id: str
    limit: int
    since: datetime
    all_or_nothing: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CanceledRun:
    """A run a cancel ended: one it selected, or a descendant canceled with its parent."""

    id: str
    workflow_id: str
    workflow_version: int
    descendant: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class InputEquals:
    """Runs whose input holds ``value`` (a JSON string, number or boolean; numbers compare as
    numbers) at ``path`` (object keys from the top), or the JSON string ``also_text`` there:
    the monitor's ``input.n = 42`` finds both ``42`` and ``"42"``."""

    path: tuple[str, ...]
    value: str | int | float | bool
    also_text: str | None = None

    def __post_init__(self) -> None:
        """The path goes into SQLite's JSON path syntax: only plain keys, never quotes."""
        if not 1 <= len(self.path) <= INPUT_PATH_MAX_DEPTH or not all(
            INPUT_KEY.fullmatch(key) for key in self.path
        ):
            raise ValueError(f"not an input path: {self.path!r}")


#: One key of an input path (``InputEquals``): letters, digits, ``_`` and ``-``.
INPUT_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")
INPUT_PATH_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFilter:
    workflow_id: str | None = None
    statuses: Sequence[str] = ()
    source: str | None = None
    created_after: datetime | None = None
    #: Only runs created strictly before this instant.
    created_before: datetime | None = None
    input_equals: InputEquals | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """A cursor position: the (created_at, id) of the last item already shown."""

    limit: int = 50
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A worker's claim on a run; every write of the run is guarded by it."""

    run_id: str
    owner: str
    epoch: int


@dataclass(slots=True, kw_only=True)
class RunProgress:
    """What a worker commits in one transaction: finished steps and the run's new fields."""

    steps: list[StepRunRow] = field(default_factory=list)
    run_changes: dict[str, object] = field(default_factory=dict)
    #: The run waits for this other run to end: wake it at once if that already happened.
    wait_for_run: str | None = None
    #: This run ended: wake this (parent) run if it waits.
    wake_run: str | None = None
    now: datetime | None = None
    #: Event triggers the parked step waits on, inserted with the park (``EventKeyTaken`` if
    #: a key already waits); an event buffered for one of them resolves it at once.
    event_waits: list[EventTriggerRow] = field(default_factory=list)


class Store(Protocol):
    """Everything flowgate keeps. Implementations: ``SqliteStore``, ``PostgresStore``."""

    is_sqlite: bool

    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    def is_outage(self, exc: BaseException) -> bool:
        """True when ``exc`` means the database could not be reached (not a bug, not bad data)."""
        ...

    async def migrate(self, upgrade: Callable[[Connection], None]) -> None: ...
    async def listen(
        self,
        *,
        on_work: Callable[[], None],
        on_run_done: Callable[[str], None],
        on_run_changed: Callable[[str], None],
        on_event_changed: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        """Deliver other processes' announcements until cancelled: new work, a run's end, a
        run's other changes (its id), an event key's trigger changes (``"project:key"``), and
        a reconnection (anything may have been missed)."""
        ...

    async def ensure_project(self, row: ProjectRow) -> None: ...
    async def insert_project(self, row: ProjectRow) -> None: ...
    async def get_project(self, project_id: str) -> ProjectRow | None: ...
    async def update_project(self, row: ProjectRow) -> None: ...
    async def list_projects(self, project_ids: Sequence[str] | None) -> list[ProjectRow]: ...

    async def insert_key(self, row: KeyRow) -> None: ...
    async def upsert_bootstrap_key(self, row: KeyRow) -> None: ...
    async def find_key(self, key_hash: str) -> tuple[KeyRow, ProjectRow] | None: ...
    async def list_keys(self, project_id: str) -> list[KeyRow]: ...
    async def revoke_key(self, project_id: str, key_id: str, *, now: datetime) -> KeyRow | None: ...
    async def touch_key(self, key_id: str, *, now: datetime) -> None: ...
    async def claim_rate(
        self, key_id: str, category: str, *, minute: int, want: int, limit: int
    ) -> tuple[int, int]: ...
    async def prune_rate_counters(self, *, before_minute: int) -> int: ...

    async def insert_workflow(
        self, row: WorkflowRow, *, triggers: Sequence[TriggerRow] = ()
    ) -> None: ...
    async def get_workflow(self, project_id: str, id_or_name: str) -> WorkflowRow | None: ...
    async def list_workflows(self, project_id: str, page: Page) -> list[WorkflowRow]: ...
    async def update_workflow(
        self, row: WorkflowRow, *, new_version: bool, triggers: Sequence[TriggerRow] | None = None
    ) -> None: ...
    async def list_workflow_versions(
        self, project_id: str, workflow_id: str
    ) -> list[WorkflowVersionRow]: ...
    async def get_workflow_version(
        self, project_id: str, workflow_id: str, version: int
    ) -> WorkflowVersionRow | None: ...

    async def get_connection(self, project_id: str, connection_id: str) -> ConnectionRow | None: ...
    async def insert_connection(self, row: ConnectionRow) -> None: ...
    async def update_connection(self, row: ConnectionRow) -> None: ...
    async def delete_connection(self, project_id: str, connection_id: str) -> bool: ...
    async def list_connections(self, project_id: str) -> list[ConnectionRow]: ...

    async def insert_trigger(self, row: TriggerRow) -> None: ...
    async def list_triggers(self, project_id: str, workflow_id: str) -> list[TriggerRow]: ...
    async def get_trigger(self, project_id: str, trigger_id: str) -> TriggerRow | None: ...
    async def delete_trigger(self, project_id: str, trigger_id: str) -> bool: ...
    async def get_trigger_by_token(self, token: str) -> TriggerRow | None: ...
    async def update_trigger(self, row: TriggerRow) -> None: ...
    async def insert_delivery(self, row: DeliveryRow) -> None: ...
    async def finish_delivery(
        self, project_id: str, delivery_id: str, *, reason: str | None, run_id: str | None
    ) -> None: ...
    async def get_delivery(
        self, project_id: str, trigger_id: str, delivery_id: str
    ) -> DeliveryRow | None: ...
    async def list_deliveries(
        self, project_id: str, trigger_id: str, page: Page
    ) -> list[DeliveryRow]: ...
    async def list_workflow_deliveries(
        self, project_id: str, workflow_id: str, page: Page
    ) -> list[DeliveryRow]: ...
    async def get_workflow_delivery(
        self, project_id: str, workflow_id: str, delivery_id: str
    ) -> DeliveryRow | None: ...
    async def prune_deliveries(self, *, before: datetime, limit: int) -> int: ...

    async def create_job_wait(self, row: EventTriggerRow) -> EventTriggerRow: ...
    async def send_event(
        self,
        project_id: str,
        key: str,
        payload: JSON,
        *,
        sent_by: str | None,
        now: datetime,
        buffer_until: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> SentEvent: ...
    async def send_events_by_prefix(
        self, project_id: str, prefix: str, payload: JSON, *, sent_by: str | None, now: datetime
    ) -> list[EventTriggerRow]: ...
    async def cancel_event(
        self, project_id: str, key: str, *, now: datetime
    ) -> tuple[EventTriggerRow | None, bool]: ...
    async def expire_event_triggers(
        self, project_id: str, trigger_ids: Sequence[str], *, now: datetime
    ) -> list[EventTriggerRow]: ...
    async def expire_due_waits(
        self, *, now: datetime, limit: int = 1000
    ) -> tuple[list[EventTriggerRow], datetime | None]: ...
    async def get_event_triggers(
        self, project_id: str, trigger_ids: Sequence[str]
    ) -> list[EventTriggerRow]: ...
    async def get_event_trigger(self, project_id: str, key: str) -> EventTriggerRow | None: ...
    async def list_event_triggers(
        self, project_id: str, where: EventFilter, page: Page
    ) -> list[EventTriggerRow]: ...
    async def event_stats(self, project_id: str) -> dict[str, Any]: ...
    async def purge_event_triggers(
        self, project_id: str, *, ended_before: datetime, dry_run: bool
    ) -> int: ...
    async def insert_files(self, rows: Sequence[FileRow]) -> None: ...
    async def get_file(self, project_id: str, file_id: str) -> FileRow | None: ...
    async def old_files(self, *, before: datetime, limit: int) -> list[FileRow]: ...
    async def delete_files(self, keys: Sequence[tuple[str, str]]) -> None: ...

    async def next_schedule_at(self) -> datetime | None: ...
    async def due_schedules(self, *, now: datetime, limit: int) -> list[TriggerRow]: ...
    async def advance_schedule(
        self, project_id: str, trigger_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool: ...

    async def insert_runs(
        self, runs: Sequence[NewRun], *, quota: RunQuota | None = None
    ) -> list[InsertedRun | None]: ...
    async def get_idempotent_run(
        self, project_id: str, workflow_id: str, key: str, *, now: datetime
    ) -> InsertedRun | None: ...
    async def get_run(self, project_id: str | None, run_id: str) -> RunRow | None: ...
    async def get_run_with_steps(
        self, project_id: str, run_id: str
    ) -> tuple[RunRow, list[StepRunRow]] | None:
        """The run and its step attempts (``list_step_runs``) in one trip to the database."""
        ...

    async def list_runs(self, project_id: str, where: RunFilter, page: Page) -> list[RunRow]: ...
    async def run_stats(
        self, project_id: str, *, since: datetime, width: timedelta, buckets: int
    ) -> list[RunStats]:
        """Per bucket of ``width`` from ``since`` and per workflow, the runs created in it."""
        ...

    async def latest_runs(self, project_id: str, workflow_ids: Sequence[str]) -> list[RunRow]:
        """The newest run of each of ``workflow_ids`` that has run (one indexed probe each)."""
        ...

    async def list_step_runs(self, run_id: str) -> list[StepRunRow]: ...
    async def cancel_runs(
        self,
        project_id: str,
        *,
        run_ids: Sequence[str] | None = None,
        where: RunFilter | None = None,
        limit: int,
        error: JSONObject,
        now: datetime,
    ) -> list[CanceledRun]: ...
    async def count_runs(self, project_id: str, where: RunFilter) -> int: ...
    async def count_runs_by_status(self, project_id: str, where: RunFilter) -> dict[str, int]:
        """How many runs match ``where`` per status (statuses with none are absent)."""
        ...

    async def list_child_runs(
        self, project_id: str, parent_run_id: str, *, limit: int
    ) -> list[RunRow]:
        """The runs ``parent_run_id`` started, newest first."""
        ...

    async def unfinished_run_ids(self, project_id: str, *, limit: int) -> list[str]:
        """Ids of the project's runs that have not ended, newest first (live views watch them)."""
        ...

    async def claim_runs(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[RunRow]: ...
    async def save_progress(self, lease: Lease, progress: RunProgress) -> bool: ...
    async def renew_lease(self, lease: Lease, *, lease_until: datetime) -> bool: ...
    async def next_wake_at(self) -> datetime | None: ...
    async def promote_queued(
        self, project_id: str, workflow_id: str, *, limit: int | None, total_limit: int | None
    ) -> list[str]: ...
    async def queue_position(self, run: RunRow) -> tuple[int, int, int]: ...
    async def queued_workflows(self) -> list[tuple[str, str, int]]: ...
    async def queue_stats(self) -> tuple[dict[str, tuple[int, datetime | None]], int]: ...
