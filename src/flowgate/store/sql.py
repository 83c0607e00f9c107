"""The store on SQLAlchemy Core, shared by SQLite and PostgreSQL; dialect quirks in subclasses.

Every method builds its statements here and hands one synchronous function to ``read`` or
``write``, which run it in one transaction: on PostgreSQL through ``AsyncConnection.run_sync``
(asyncpg underneath), on SQLite in a thread, so that a whole method costs one hop, not one per
statement.
"""

from __future__ import annotations

import abc
import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from flowgate import jsonvalue
from flowgate.statuses import (
    ACTIVE_RUN_STATUSES,
    IN_FLIGHT_STEP_STATUSES,
    UNFINISHED_RUN_STATUSES,
    EventStatus,
)
from flowgate.store import tables as t
from flowgate.store.base import (
    TERMINAL_RUN_STATUSES,
    CanceledRun,
    ConnectionRow,
    DeliveryRow,
    FileRow,
    InputEquals,
    InsertedRun,
    KeyRow,
    Lease,
    NewRun,
    Page,
    ProjectRow,
    RunFilter,
    RunProgress,
    RunQuota,
    RunRow,
    RunStatus,
    StepRunRow,
    StepStatus,
    TriggerRow,
    WorkflowRow,
    WorkflowVersionRow,
)
from flowgate.store.events import WORK_CHANNEL, EventStoreMixin
from flowgate.store.insights import InsightStoreMixin
from flowgate.types import JSONObject

T = TypeVar("T")
TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_RUN_STATUSES)
RUN_DONE_CHANNEL = "flowgate_run_done"
#: A run's status or steps changed without ending it (payload: the run id); for live streams.
RUN_CHANGED_CHANNEL = "flowgate_run_changed"
_RELEASING = TERMINAL_VALUES | {RunStatus.WAITING.value}
ACTIVE_VALUES = tuple(sorted(s.value for s in ACTIVE_RUN_STATUSES))
IN_FLIGHT_STEP_VALUES = tuple(sorted(s.value for s in IN_FLIGHT_STEP_STATUSES))
UNFINISHED_VALUES = tuple(sorted(s.value for s in UNFINISHED_RUN_STATUSES))
#: Ids per ``IN (…)``: well under SQLite's and asyncpg's limits on bound parameters.
_CHUNK = 5_000


_ik = t.idempotency_keys.c
_SAME_KEY = sa.and_(
    _ik.project_id == sa.bindparam("project_id"),
    _ik.workflow_id == sa.bindparam("workflow_id"),
    _ik.key == sa.bindparam("key"),
)
_DELETE_EXPIRED_KEY = t.idempotency_keys.delete().where(
    _SAME_KEY, _ik.expires_at <= sa.bindparam("now", type_=t.UTCMillis())
)
_INSERT_RUN = t.runs.insert()
_INSERT_STEP_RUN = t.step_runs.insert()
_IDEMPOTENCY_RUN = sa.select(_ik.run_id, _ik.input).where(_SAME_KEY)


class _LeaseLost(Exception):
    """Raised inside a transaction to roll it back when the lease guard matched no row."""


def json_dumps(value: object) -> str:
    return jsonvalue.dumps_str(value)  # orjson, or the stdlib past orjson's 254 levels


def _row(row: sa.Row[Any]) -> Any:
    return dict(row._mapping)


def _first(conn: Connection, query: sa.Executable) -> Any:
    found = conn.execute(query).first()
    return None if found is None else _row(found)


def _every(conn: Connection, query: sa.Executable) -> Any:
    return [_row(found) for found in conn.execute(query)]


def choose_promotions(
    active: dict[str | None, int],
    queued: list[tuple[str, str | None]],
    *,
    limit: int | None,
    total_limit: int | None,
) -> list[str]:
    """Which queued runs may start: take the head of each key's queue in turn (round-robin,
    keys ordered by their first queued run) while the per-key and total limits allow."""
    by_key: dict[str | None, list[str]] = {}
    for run_id, key in queued:
        by_key.setdefault(key, []).append(run_id)
    running = dict(active)
    total = sum(running.values())
    chosen: list[str] = []
    while by_key:
        for key in list(by_key):
            if total_limit is not None and total >= total_limit:
                return chosen
            if limit is not None and running.get(key, 0) >= limit:
                del by_key[key]
                continue
            chosen.append(by_key[key].pop(0))
            running[key] = running.get(key, 0) + 1
            total += 1
            if not by_key[key]:
                del by_key[key]
    return chosen


def _canceled(error: JSONObject, now: datetime) -> dict[str, object]:
    """The columns of a run that is canceled: ended, with no lease, timer or queue place."""
    return {
        "status": RunStatus.CANCELED.value,
        "error": error,
        "completed_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "queued_reason": None,
        "wake_at": None,
    }


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


class _InputEquals(sa.sql.expression.ColumnElement[bool]):
    """``runs.input`` holds a value at a path (``RunFilter.input_equals``); the JSON functions
    differ per dialect, so it is compiled below for each. The path and value are bound
    parameters, the path's keys checked by ``InputEquals`` itself."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, match: InputEquals) -> None:
        self.wanted = match


#: Text JSON writes as it is (no escapes): no quote, backslash or control character.
_PLAIN_TEXT = re.compile(r'[^"\\\x00-\x1f\x7f]*')


@compiles(_InputEquals, "sqlite")
def _input_equals_sqlite(element: _InputEquals, compiler: Any, **kw: Any) -> str:
    match, column = element.wanted, t.runs.c.input
    path: sa.BindParameter[str] = sa.bindparam(
        "input_path", "$" + "".join(f'."{key}"' for key in match.path)
    )
    kind = sa.func.json_type(column, path)
    found = sa.func.json_extract(column, path)
    value = match.value
    # The value test first: most rows fail it, and SQLite then skips parsing for the type.
    if isinstance(value, bool):
        typed = sa.and_(found == int(value), kind == ("true" if value else "false"))
    elif isinstance(value, int | float):
        typed = sa.and_(found == value, kind.in_(["integer", "real"]))
    elif _PLAIN_TEXT.fullmatch(value):
        # The stored JSON holds such a string verbatim: a substring test skips most rows
        # before SQLite parses any JSON (a list filtered this way scans the project's runs).
        quoted: sa.BindParameter[str] = sa.bindparam("input_quoted", f'"{value}"', unique=True)
        typed = sa.and_(sa.func.instr(column, quoted) > 0, found == value, kind == "text")
    else:
        typed = sa.and_(found == value, kind == "text")
    if match.also_text is not None:
        typed = sa.or_(typed, sa.and_(found == match.also_text, kind == "text"))
    digits = _number_digits(value)
    if digits is not None:
        # As for plain text: any row holding the number (or its text) holds these digits.
        spelled: sa.BindParameter[str] = sa.bindparam("input_digits", digits, unique=True)
        typed = sa.and_(sa.func.instr(column, spelled) > 0, typed)
    return str(compiler.process(typed, **kw))


def _number_digits(value: object) -> str | None:
    """Digits every JSON spelling of the number contains (``5`` of ``5``, ``5.0``, ``-5``), or
    None where spellings may differ (exponents, very large or very small numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 1e-4 <= abs(value) < 1e15:
        return None
    if float(value).is_integer():
        return str(abs(int(value)))
    spelled = repr(abs(float(value)))
    return None if "e" in spelled else spelled


@compiles(_InputEquals, "postgresql")
def _input_equals_postgresql(element: _InputEquals, compiler: Any, **kw: Any) -> str:
    match, column = element.wanted, t.runs.c.input
    path = sa.bindparam(
        "input_path", list(match.path), type_=postgresql.ARRAY(sa.Text), unique=True
    )
    node = column.op("#>", return_type=postgresql.JSONB)(path)
    text = column.op("#>>", return_type=sa.Text)(path)
    value = match.value
    if isinstance(value, str):
        typed = sa.and_(sa.func.jsonb_typeof(node) == "string", text == value)
    else:  # jsonb equality: numbers compare as numbers (1 = 1.0)
        literal = sa.bindparam(
            "input_value", jsonvalue.dumps_str(value), type_=sa.Text, unique=True
        )
        typed = node == sa.cast(literal, postgresql.JSONB)
    if match.also_text is not None:
        typed = sa.or_(
            typed, sa.and_(sa.func.jsonb_typeof(node) == "string", text == match.also_text)
        )
    return str(compiler.process(typed, **kw))


def _matching(project_id: str, where: RunFilter) -> list[sa.ColumnElement[bool]]:
    r = t.runs.c
    clauses = [r.project_id == project_id]
    if where.workflow_id is not None:
        clauses.append(r.workflow_id == where.workflow_id)
    if where.statuses:
        clauses.append(r.status.in_(list(where.statuses)))
    if where.source is not None:
        clauses.append(r.source == where.source)
    if where.created_after is not None:
        clauses.append(r.created_at > where.created_after)
    if where.created_before is not None:
        clauses.append(r.created_at < where.created_before)
    if where.input_equals is not None:
        clauses.append(_InputEquals(where.input_equals))
    return clauses


def _wake_if_ended(other_run_id: str, now: datetime) -> sa.ColumnElement[Any]:
    """``wake_at`` for a run waiting on another: now if that one has ended already, else NULL.

    Evaluated in the parking transaction, so a child that ends just before its parent parks is
    not missed: either this sees it ended, or its own wake-up finds the parent waiting.
    """
    other = t.runs.alias("other")
    ended = (
        sa.select(sa.literal(1))
        .where(other.c.id == other_run_id, other.c.status.in_(TERMINAL_VALUES))
        .exists()
    )
    return sa.case((ended, sa.bindparam("wake_now", now, type_=t.UTCMillis())), else_=None)


def _after(table: sa.Table, page: Page) -> sa.ColumnElement[bool] | None:
    """Keyset pagination on (created_at, id), newest first: stable under concurrent inserts."""
    if page.after is None:
        return None
    created, last_id = page.after
    c = table.c
    return sa.or_(c.created_at < created, sa.and_(c.created_at == created, c.id < last_id))


class SqlStore(EventStoreMixin, InsightStoreMixin, abc.ABC):
    """One transaction per method. Subclasses run transactions and name their dialect; the
    hooks that only PostgreSQL needs (``announce``, ``listen``, ``serialize``) are
    deliberate no-ops here, since one SQLite process has nobody to tell and writes serially."""

    is_sqlite = False

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def migrate(self, upgrade: Callable[[Connection], None]) -> None:
        """Run ``upgrade`` (Alembic) on one connection, safely against other processes."""

    @abc.abstractmethod
    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on a connection (reads only)."""

    @abc.abstractmethod
    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction; a unique violation raises ``Duplicate``."""

    @abc.abstractmethod
    def dialect_insert(self, table: sa.Table) -> Any:
        """This dialect's ``INSERT`` construct, which knows ``ON CONFLICT``."""

    def insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING``."""
        return self.dialect_insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> Any:
        """``INSERT … ON CONFLICT (keys) DO UPDATE`` every other column."""
        statement = self.dialect_insert(table)
        others = {
            c.name: statement.excluded[c.name]
            for c in table.c
            if c.name not in keys and not c.primary_key
        }
        return statement.on_conflict_do_update(index_elements=list(keys), set_=others)

    async def _one(self, query: sa.Executable) -> Any:
        return await self.read(lambda conn: _first(conn, query))

    async def _all(self, query: sa.Executable) -> Any:
        return await self.read(lambda conn: _every(conn, query))

    async def _execute(self, *statements: sa.Executable) -> None:
        def work(conn: Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        await self.write(work)

    def is_outage(self, exc: BaseException) -> bool:
        """The database could not be reached: a lost or refused connection, a locked file."""
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        return isinstance(
            exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError | OSError
        )

    async def ping(self) -> None:
        await self._one(sa.select(sa.literal(1)))

    # projects -------------------------------------------------------------------------------

    async def ensure_project(self, row: ProjectRow) -> None:
        await self._execute(self.insert_ignore(t.projects).values(**row))

    async def insert_project(self, row: ProjectRow) -> None:
        await self._execute(t.projects.insert().values(**row))

    async def update_project(self, row: ProjectRow) -> None:
        await self._execute(
            t.projects.update()
            .where(t.projects.c.id == row["id"])
            .values(
                name=row["name"],
                run_quota_per_day=row["run_quota_per_day"],
                event_buffer_secs=row["event_buffer_secs"],
            )
        )

    async def get_project(self, project_id: str) -> ProjectRow | None:
        return cast(
            ProjectRow | None,
            await self._one(t.projects.select().where(t.projects.c.id == project_id)),
        )

    async def list_projects(self, project_ids: Sequence[str] | None) -> list[ProjectRow]:
        query = t.projects.select().order_by(t.projects.c.created_at, t.projects.c.id)
        if project_ids is not None:
            query = query.where(t.projects.c.id.in_(project_ids))
        return cast(list[ProjectRow], await self._all(query))

    # keys -----------------------------------------------------------------------------------

    async def insert_key(self, row: KeyRow) -> None:
        await self._execute(t.api_keys.insert().values(**row))

    async def upsert_bootstrap_key(self, row: KeyRow) -> None:
        """Make the bootstrap key exist with exactly this hash, replacing an earlier one."""
        k = t.api_keys.c
        await self._execute(
            t.api_keys.delete().where(sa.or_(k.id == row["id"], k.key_hash == row["key_hash"])),
            t.api_keys.insert().values(**row),
        )

    async def find_key(self, key_hash: str) -> tuple[KeyRow, ProjectRow] | None:
        project_cols = [c.label(f"project__{c.name}") for c in t.projects.c]
        query = (
            sa.select(t.api_keys, *project_cols)
            .join(t.projects, t.projects.c.id == t.api_keys.c.project_id)
            .where(t.api_keys.c.key_hash == key_hash)
        )
        mapping = await self._one(query)
        if mapping is None:
            return None
        key = {c.name: mapping[c.name] for c in t.api_keys.c}
        project = {c.name: mapping[f"project__{c.name}"] for c in t.projects.c}
        return cast(KeyRow, key), cast(ProjectRow, project)

    async def list_keys(self, project_id: str) -> list[KeyRow]:
        k = t.api_keys.c
        query = t.api_keys.select().where(k.project_id == project_id).order_by(k.created_at, k.id)
        return cast(list[KeyRow], await self._all(query))

    async def revoke_key(self, project_id: str, key_id: str, *, now: datetime) -> KeyRow | None:
        k = t.api_keys.c
        mine = sa.and_(k.project_id == project_id, k.id == key_id)

        def work(conn: Connection) -> Any:
            conn.execute(
                t.api_keys.update().where(mine, k.revoked_at.is_(None)).values(revoked_at=now)
            )
            return _first(conn, t.api_keys.select().where(mine))

        return cast(KeyRow | None, await self.write(work))

    async def touch_key(self, key_id: str, *, now: datetime) -> None:
        await self._execute(
            t.api_keys.update().where(t.api_keys.c.id == key_id).values(last_used_at=now)
        )

    # rate limits ----------------------------------------------------------------------------

    async def claim_rate(
        self, key_id: str, category: str, *, minute: int, want: int, limit: int
    ) -> tuple[int, int]:
        """Grant up to ``want`` requests without the window's count passing ``limit``; returns
        (granted, count). One upsert."""
        rc = t.rate_counters
        count = rc.c["count"]
        room = limit - count
        # Both SET expressions read the row as it was; ``granted`` tells the caller its share.
        granted = sa.case((room >= want, want), (room <= 0, 0), else_=room)
        first = min(want, max(limit, 0))
        statement = self.dialect_insert(rc).values(
            key_id=key_id, category=category, window_minute=minute, count=first, granted=first
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key_id", "category", "window_minute"],
            set_={"count": count + granted, "granted": granted},
        ).returning(rc.c.granted, count)

        def work(conn: Connection) -> tuple[int, int]:
            row = conn.execute(statement).one()
            return int(row[0]), int(row[1])

        return await self.write(work)

    async def prune_rate_counters(self, *, before_minute: int) -> int:
        """Delete the counts of windows before ``before_minute``; returns how many."""
        rc = t.rate_counters
        statement = rc.delete().where(rc.c.window_minute < before_minute)
        return await self.write(lambda conn: int(conn.execute(statement).rowcount))

    # workflows ------------------------------------------------------------------------------

    def _version_insert(self, row: WorkflowRow) -> sa.Executable:
        return t.workflow_versions.insert().values(
            project_id=row["project_id"],
            workflow_id=row["id"],
            version=row["version"],
            definition=row["definition"],
            created_at=row["updated_at"],
        )

    def _definition_triggers(
        self, row: WorkflowRow, triggers: Sequence[TriggerRow]
    ) -> list[sa.Executable]:
        """Replace the workflow's triggers from its document; those made through the triggers
        API stay. Kept rows come back with their ids, so delete-then-insert keeps them."""
        g = t.triggers.c
        statements: list[sa.Executable] = [
            t.triggers.delete().where(
                g.project_id == row["project_id"],
                g.workflow_id == row["id"],
                g.source == "definition",
            )
        ]
        statements += [t.triggers.insert().values(**trigger) for trigger in triggers]
        return statements

    async def insert_workflow(
        self, row: WorkflowRow, *, triggers: Sequence[TriggerRow] = ()
    ) -> None:
        """Raises ``Duplicate`` when the id or the name is taken."""
        await self._execute(
            t.workflows.insert().values(**row),
            self._version_insert(row),
            *[t.triggers.insert().values(**trigger) for trigger in triggers],
        )

    async def get_workflow(self, project_id: str, id_or_name: str) -> WorkflowRow | None:
        """By id, else by exact name: one statement, the id match first."""
        w = t.workflows.c
        query = (
            t.workflows.select()
            .where(w.project_id == project_id, sa.or_(w.id == id_or_name, w.name == id_or_name))
            .order_by(sa.case((w.id == id_or_name, 0), else_=1))
            .limit(1)
        )
        return cast(WorkflowRow | None, await self._one(query))

    async def list_workflows(self, project_id: str, page: Page) -> list[WorkflowRow]:
        w = t.workflows.c
        query = (
            t.workflows.select()
            .where(w.project_id == project_id)
            .order_by(w.created_at.desc(), w.id.desc())
            .limit(page.limit)
        )
        after = _after(t.workflows, page)
        if after is not None:
            query = query.where(after)
        return cast(list[WorkflowRow], await self._all(query))

    async def update_workflow(
        self, row: WorkflowRow, *, new_version: bool, triggers: Sequence[TriggerRow] | None = None
    ) -> None:
        """Raises ``Duplicate`` when the new name is taken. ``triggers``, when given, replace
        the workflow's triggers from its document, in the same transaction."""
        values = {k: v for k, v in row.items() if k not in ("id", "project_id", "created_at")}
        w = t.workflows.c
        statements: list[sa.Executable] = [
            t.workflows.update()
            .where(w.project_id == row["project_id"], w.id == row["id"])
            .values(**values)
        ]
        if new_version:
            statements.append(self._version_insert(row))
        if triggers is not None:
            statements += self._definition_triggers(row, triggers)
        await self._execute(*statements)

    async def list_workflow_versions(
        self, project_id: str, workflow_id: str
    ) -> list[WorkflowVersionRow]:
        v = t.workflow_versions.c
        query = (
            t.workflow_versions.select()
            .where(v.project_id == project_id, v.workflow_id == workflow_id)
            .order_by(v.version.desc())
        )
        return cast(list[WorkflowVersionRow], await self._all(query))

    async def get_workflow_version(
        self, project_id: str, workflow_id: str, version: int
    ) -> WorkflowVersionRow | None:
        v = t.workflow_versions.c
        query = t.workflow_versions.select().where(
            v.project_id == project_id, v.workflow_id == workflow_id, v.version == version
        )
        return cast(WorkflowVersionRow | None, await self._one(query))

    # connections ----------------------------------------------------------------------------

    async def insert_connection(self, row: ConnectionRow) -> None:
        """Raises ``Duplicate`` when the id is taken."""
        await self._execute(t.connections.insert().values(**row))

    async def update_connection(self, row: ConnectionRow) -> None:
        values = {k: v for k, v in row.items() if k not in ("id", "project_id", "created_at")}
        c = t.connections.c
        await self._execute(
            t.connections.update()
            .where(c.id == row["id"], c.project_id == row["project_id"])
            .values(**values)
        )

    async def delete_connection(self, project_id: str, connection_id: str) -> bool:
        c = t.connections.c
        delete = t.connections.delete().where(c.project_id == project_id, c.id == connection_id)
        return await self.write(lambda conn: conn.execute(delete).rowcount == 1)

    async def list_connections(self, project_id: str) -> list[ConnectionRow]:
        c = t.connections.c
        query = (
            t.connections.select().where(c.project_id == project_id).order_by(c.created_at, c.id)
        )
        return cast(list[ConnectionRow], await self._all(query))

    async def get_connection(self, project_id: str, connection_id: str) -> ConnectionRow | None:
        c = t.connections.c
        query = t.connections.select().where(c.project_id == project_id, c.id == connection_id)
        return cast(ConnectionRow | None, await self._one(query))

    # triggers -------------------------------------------------------------------------------

    async def insert_trigger(self, row: TriggerRow) -> None:
        """Raises ``Duplicate`` when the id or the token is taken."""
        await self._execute(t.triggers.insert().values(**row))

    async def list_triggers(self, project_id: str, workflow_id: str) -> list[TriggerRow]:
        g = t.triggers.c
        query = (
            t.triggers.select()
            .where(g.project_id == project_id, g.workflow_id == workflow_id)
            .order_by(g.created_at, g.id)
        )
        return cast(list[TriggerRow], await self._all(query))

    async def get_trigger(self, project_id: str, trigger_id: str) -> TriggerRow | None:
        g = t.triggers.c
        query = t.triggers.select().where(g.project_id == project_id, g.id == trigger_id)
        return cast(TriggerRow | None, await self._one(query))

    async def delete_trigger(self, project_id: str, trigger_id: str) -> bool:
        g = t.triggers.c
        delete = t.triggers.delete().where(g.project_id == project_id, g.id == trigger_id)
        return await self.write(lambda conn: conn.execute(delete).rowcount == 1)

    async def get_trigger_by_token(self, token: str) -> TriggerRow | None:
        """Any project's: a webhook URL's token is its only credential."""
        query = t.triggers.select().where(t.triggers.c.token == token)
        return cast(TriggerRow | None, await self._one(query))

    async def update_trigger(self, row: TriggerRow) -> None:
        g = t.triggers.c
        values = {k: v for k, v in row.items() if k not in ("id", "project_id", "created_at")}
        await self._execute(
            t.triggers.update()
            .where(g.project_id == row["project_id"], g.id == row["id"])
            .values(**values)
        )

    # webhook inbox --------------------------------------------------------------------------

    async def insert_delivery(self, row: DeliveryRow) -> None:
        """Raises ``Duplicate`` when its ``replay_key`` was seen for this trigger (a replay)."""
        await self._execute(t.trigger_deliveries.insert().values(**row))

    async def finish_delivery(
        self, project_id: str, delivery_id: str, *, reason: str | None, run_id: str | None
    ) -> None:
        """Record the run an accepted delivery started, or why none started (the delivery is
        then ``rejected`` and gives up its replay key, so the sender's retry is not a replay)."""
        d = t.trigger_deliveries.c
        values: dict[str, object] = {"run_id": run_id}
        if run_id is None:
            values |= {"verdict": "rejected", "reason": reason, "replay_key": None}
        await self._execute(
            t.trigger_deliveries.update()
            .where(d.project_id == project_id, d.id == delivery_id)
            .values(**values)
        )

    async def get_delivery(
        self, project_id: str, trigger_id: str, delivery_id: str
    ) -> DeliveryRow | None:
        d = t.trigger_deliveries.c
        query = t.trigger_deliveries.select().where(
            d.project_id == project_id, d.trigger_id == trigger_id, d.id == delivery_id
        )
        return cast(DeliveryRow | None, await self._one(query))

    async def list_deliveries(
        self, project_id: str, trigger_id: str, page: Page
    ) -> list[DeliveryRow]:
        """Newest first, keyset on (received_at, id)."""
        d = t.trigger_deliveries.c
        return await self._deliveries(d.project_id == project_id, d.trigger_id == trigger_id, page)

    async def list_workflow_deliveries(
        self, project_id: str, workflow_id: str, page: Page
    ) -> list[DeliveryRow]:
        """Every delivery for one workflow (webhooks and dialect calls), newest first."""
        d = t.trigger_deliveries.c
        return await self._deliveries(
            d.project_id == project_id, d.workflow_id == workflow_id, page
        )

    async def get_workflow_delivery(
        self, project_id: str, workflow_id: str, delivery_id: str
    ) -> DeliveryRow | None:
        d = t.trigger_deliveries.c
        query = t.trigger_deliveries.select().where(
            d.project_id == project_id, d.workflow_id == workflow_id, d.id == delivery_id
        )
        return cast(DeliveryRow | None, await self._one(query))

    async def _deliveries(
        self, project: sa.ColumnElement[bool], owner: sa.ColumnElement[bool], page: Page
    ) -> list[DeliveryRow]:
        d = t.trigger_deliveries.c
        query = (
            t.trigger_deliveries.select()
            .where(project, owner)
            .order_by(d.received_at.desc(), d.id.desc())
            .limit(page.limit)
        )
        if page.after is not None:
            received, last_id = page.after
            query = query.where(
                sa.or_(d.received_at < received, sa.and_(d.received_at == received, d.id < last_id))
            )
        return cast(list[DeliveryRow], await self._all(query))

    async def prune_deliveries(self, *, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` deliveries received before ``before``; returns how many."""
        d = t.trigger_deliveries.c
        oldest = (
            sa.select(d.project_id, d.id)
            .where(d.received_at < before)
            .order_by(d.received_at)
            .limit(limit)
        )
        delete = t.trigger_deliveries.delete().where(sa.tuple_(d.project_id, d.id).in_(oldest))
        return await self.write(lambda conn: int(conn.execute(delete).rowcount))

    # uploaded files -------------------------------------------------------------------------

    async def insert_files(self, rows: Sequence[FileRow]) -> None:
        if rows:
            await self._execute(t.uploaded_files.insert().values(list(rows)))

    async def get_file(self, project_id: str, file_id: str) -> FileRow | None:
        f = t.uploaded_files.c
        query = t.uploaded_files.select().where(f.project_id == project_id, f.id == file_id)
        return cast(FileRow | None, await self._one(query))

    async def old_files(self, *, before: datetime, limit: int) -> list[FileRow]:
        """At most ``limit`` files stored before ``before``, oldest first."""
        f = t.uploaded_files.c
        query = (
            t.uploaded_files.select()
            .where(f.created_at < before)
            .order_by(f.created_at)
            .limit(limit)
        )
        return cast(list[FileRow], await self._all(query))

    async def delete_files(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget the files with these ``(project_id, id)`` keys."""
        if keys:
            f = t.uploaded_files.c
            await self._execute(
                t.uploaded_files.delete().where(sa.tuple_(f.project_id, f.id).in_(list(keys)))
            )

    # schedules ------------------------------------------------------------------------------

    async def next_schedule_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of any schedule (one read of the index)."""
        g = t.triggers.c
        found = await self.read(
            lambda conn: conn.execute(sa.select(sa.func.min(g.next_run_at))).scalar_one()
        )
        return cast("datetime | None", found)

    async def due_schedules(self, *, now: datetime, limit: int) -> list[TriggerRow]:
        """Schedule triggers whose ``next_run_at`` has come, earliest first."""
        g = t.triggers.c
        query = (
            t.triggers.select()
            .where(g.next_run_at <= now)
            .order_by(g.next_run_at, g.project_id, g.id)
            .limit(limit)
        )
        return cast(list[TriggerRow], await self._all(query))

    async def advance_schedule(
        self, project_id: str, trigger_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool:
        """Move ``next_run_at`` from ``due`` on; False if another process (or a change of the
        trigger) moved it first."""
        g = t.triggers.c
        update = (
            t.triggers.update()
            .where(g.project_id == project_id, g.id == trigger_id, g.next_run_at == due)
            .values(next_run_at=next_run_at)
        )
        return await self.write(lambda conn: conn.execute(update).rowcount == 1)

    # runs -----------------------------------------------------------------------------------

    def announce(self, conn: Connection, channel: str, payload: str = "") -> None:
        """Tell other processes, when this transaction commits (PostgreSQL: NOTIFY)."""

    async def listen(
        self,
        *,
        on_work: Callable[[], None],
        on_run_done: Callable[[str], None],
        on_run_changed: Callable[[str], None],
        on_event_changed: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        """Deliver other processes' announcements until cancelled (one process: nothing to do)."""

    async def insert_runs(
        self, runs: Sequence[NewRun], *, quota: RunQuota | None = None
    ) -> list[InsertedRun | None]:
        """Insert runs in one transaction; a taken idempotency key answers with its run instead.

        With a ``quota``, runs are counted and inserted in the same transaction (serialized per
        project), so concurrent starts cannot overshoot it; a run it does not allow is None, and
        an idempotent replay is never counted.
        """

        def work(conn: Connection) -> list[InsertedRun | None]:
            allowance = None if quota is None else self._quota_left(conn, quota)
            if quota is not None and quota.all_or_nothing and len(runs) > (allowance or 0):
                return [None] * len(runs)
            results: list[InsertedRun | None] = []
            for new in runs:
                if allowance is not None and allowance <= 0:
                    results.append(self._replay_of(conn, new))
                    continue
                inserted = self._insert_run(conn, new)
                if allowance is not None and not inserted.replayed:
                    allowance -= 1
                results.append(inserted)
            # Also for runs inserted already claimed: other processes' monitors list them.
            self.announce(conn, WORK_CHANNEL)
            return results

        return await self.write(work)

    def _quota_left(self, conn: Connection, quota: RunQuota) -> int:
        self.serialize(conn, f"quota/{quota.project_id}")
        r = t.runs.c
        used = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.runs)
            .where(r.project_id == quota.project_id, r.created_at >= quota.since)
        ).scalar_one()
        return max(quota.limit - int(used), 0)

    def _fire_taken(self, conn: Connection, new: NewRun) -> InsertedRun | None:
        """Claim ``new``'s due time; if another run has it, that run. The primary key on
        (project, trigger, due time) is what makes a due time start one run, whatever the
        number of schedulers: the losers' inserts do nothing (PostgreSQL waits for the
        winner's commit, so they see its run)."""
        assert new.fire is not None  # noqa: S101 - only called for schedule runs
        run = new.row
        inserted = conn.execute(
            self.insert_ignore(t.schedule_fires),
            {
                "project_id": run["project_id"],
                "trigger_id": new.fire.trigger_id,
                "due_at": new.fire.due_at,
                "run_id": run["id"],
                "created_at": run["created_at"],
            },
        )
        return None if inserted.rowcount == 1 else self._fire_run(conn, new)

    def _fire_run(self, conn: Connection, new: NewRun) -> InsertedRun | None:
        """The run that already has ``new``'s due time, if any."""
        if new.fire is None:
            return None
        f, r = t.schedule_fires.c, t.runs.c
        found = _first(
            conn,
            t.runs.select()
            .join(t.schedule_fires, r.id == f.run_id)
            .where(
                f.project_id == new.row["project_id"],
                f.trigger_id == new.fire.trigger_id,
                f.due_at == new.fire.due_at,
            ),
        )
        if found is None:
            return None
        return InsertedRun(run=found, replayed=True, stored_input=found["input"])

    def _replay_of(self, conn: Connection, new: NewRun) -> InsertedRun | None:
        """The run ``new``'s unexpired idempotency key points to, if any."""
        claim, run = new.idempotency, new.row
        if claim is None:
            return self._fire_run(conn, new)
        key = {"project_id": run["project_id"], "workflow_id": run["workflow_id"], "key": claim.key}
        conn.execute(_DELETE_EXPIRED_KEY, {**key, "now": run["created_at"]})
        existing = conn.execute(_IDEMPOTENCY_RUN, key).first()
        if existing is None:
            return None
        found = _first(conn, t.runs.select().where(t.runs.c.id == existing.run_id))
        return InsertedRun(run=found, replayed=True, stored_input=existing.input)

    def _insert_run(self, conn: Connection, new: NewRun) -> InsertedRun:
        """Constant statements with parameters: building ``.values(**row)`` per call costs more
        than the insert itself."""
        claim = new.idempotency
        run = new.row
        if new.fire is not None:
            taken = self._fire_taken(conn, new)
            if taken is not None:
                return taken
        if claim is not None:
            key = {
                "project_id": run["project_id"],
                "workflow_id": run["workflow_id"],
                "key": claim.key,
            }
            conn.execute(_DELETE_EXPIRED_KEY, {**key, "now": run["created_at"]})
            inserted = conn.execute(
                self._insert_idempotency_key,
                {
                    **key,
                    "run_id": run["id"],
                    "input": claim.input,
                    "created_at": run["created_at"],
                    "expires_at": claim.expires_at,
                },
            )
            if inserted.rowcount == 0:
                existing = conn.execute(_IDEMPOTENCY_RUN, key).one()
                found = _first(conn, t.runs.select().where(t.runs.c.id == existing.run_id))
                return InsertedRun(run=found, replayed=True, stored_input=existing.input)
        conn.execute(_INSERT_RUN, run)
        if new.steps:
            conn.execute(_INSERT_STEP_RUN, [dict(step) for step in new.steps])
        return InsertedRun(run=run)

    @functools.cached_property
    def _insert_idempotency_key(self) -> Any:
        return self.insert_ignore(t.idempotency_keys)

    async def get_idempotent_run(
        self, project_id: str, workflow_id: str, key: str, *, now: datetime
    ) -> InsertedRun | None:
        """The unexpired run an idempotency key points to, with the input it was sent with."""
        ik = t.idempotency_keys.c
        query = (
            sa.select(t.runs, ik.input.label("idempotency_input"))
            .join(t.idempotency_keys, ik.run_id == t.runs.c.id)
            .where(
                ik.project_id == project_id,
                ik.workflow_id == workflow_id,
                ik.key == key,
                ik.expires_at > now,
            )
        )
        row = await self._one(query)
        if row is None:
            return None
        stored = row.pop("idempotency_input")
        return InsertedRun(run=row, replayed=True, stored_input=stored)

    async def get_run(self, project_id: str | None, run_id: str) -> RunRow | None:
        query = t.runs.select().where(t.runs.c.id == run_id)
        if project_id is not None:
            query = query.where(t.runs.c.project_id == project_id)
        return cast(RunRow | None, await self._one(query))

    @functools.cached_property
    def _run_and_steps(self) -> tuple[sa.Executable, sa.Executable]:
        r, s = t.runs.c, t.step_runs.c
        run_id = sa.bindparam("run_id", type_=sa.String())
        run_query = t.runs.select().where(
            r.id == run_id, r.project_id == sa.bindparam("project_id", type_=sa.String())
        )
        steps_query = t.step_runs.select().where(s.run_id == run_id).order_by(s.position, s.attempt)
        return run_query, steps_query

    async def get_run_with_steps(
        self, project_id: str, run_id: str
    ) -> tuple[RunRow, list[StepRunRow]] | None:
        run_query, steps_query = self._run_and_steps
        params = {"run_id": run_id, "project_id": project_id}

        def work(conn: Connection) -> tuple[RunRow, list[StepRunRow]] | None:
            found = conn.execute(run_query, params).first()
            if found is None:
                return None
            run = cast(RunRow, _row(found))
            if not run["started_at"]:
                return run, []
            steps = [_row(step) for step in conn.execute(steps_query, params)]
            return run, cast(list[StepRunRow], steps)

        return await self.read(work)

    async def list_runs(self, project_id: str, where: RunFilter, page: Page) -> list[RunRow]:
        r = t.runs.c
        query = (
            t.runs.select()
            .where(*_matching(project_id, where))
            .order_by(r.created_at.desc(), r.id.desc())
            .limit(page.limit)
        )
        after = _after(t.runs, page)
        if after is not None:
            query = query.where(after)
        return cast(list[RunRow], await self._all(query))

    async def count_runs(self, project_id: str, where: RunFilter) -> int:
        query = sa.select(sa.func.count()).select_from(t.runs).where(*_matching(project_id, where))
        return int(await self.read(lambda conn: conn.execute(query).scalar_one()))

    async def count_runs_by_status(self, project_id: str, where: RunFilter) -> dict[str, int]:
        r = t.runs.c
        query = (
            sa.select(r.status, sa.func.count())
            .where(*_matching(project_id, where))
            .group_by(r.status)
        )
        rows = await self.read(lambda conn: conn.execute(query).all())
        return {str(status): int(count) for status, count in rows}

    async def list_child_runs(
        self, project_id: str, parent_run_id: str, *, limit: int
    ) -> list[RunRow]:
        r = t.runs.c
        # By parent alone (run ids are unique; a child is in its parent's project, checked
        # below): given the project too, SQLite without statistics walks the project's runs in
        # order, all of them for a run without children, rather than ``ix_runs_parent``.
        query = (
            t.runs.select()
            .where(r.parent_run_id == parent_run_id)
            .order_by(r.created_at.desc(), r.id.desc())
            .limit(limit)
        )
        rows = cast(list[RunRow], await self._all(query))
        return [row for row in rows if row["project_id"] == project_id]

    async def unfinished_run_ids(self, project_id: str, *, limit: int) -> list[str]:
        r = t.runs.c
        query = (
            sa.select(r.id)
            .where(r.project_id == project_id, r.status.in_(UNFINISHED_VALUES))
            .order_by(r.created_at.desc())
            .limit(limit)
        )
        return list(await self.read(lambda conn: conn.execute(query).scalars().all()))

    async def cancel_runs(
        self,
        project_id: str,
        *,
        run_ids: Sequence[str] | None = None,
        where: RunFilter | None = None,
        limit: int,
        error: JSONObject,
        now: datetime,
    ) -> list[CanceledRun]:
        """Cancel the unfinished runs selected by ``run_ids`` or ``where`` (at most ``limit``),
        their unfinished descendants, and every step attempt they have in flight, in one
        transaction; returns what it canceled, the selected runs first."""
        r = t.runs.c
        selection = (
            r.id.in_(list(run_ids))
            if run_ids is not None
            else sa.and_(*_matching(project_id, where or RunFilter()))
        )
        selected = (
            sa.select(r.id)
            .where(r.project_id == project_id, selection, r.status.not_in(TERMINAL_VALUES))
            .limit(limit)
        )

        def work(conn: Connection) -> list[CanceledRun]:
            canceled: list[CanceledRun] = []
            targets = list(conn.execute(selected).scalars())
            descendant = False
            while targets:
                ended = self._cancel_ids(conn, targets, error=error, now=now)
                canceled += [
                    CanceledRun(
                        id=row.id,
                        workflow_id=row.workflow_id,
                        workflow_version=row.workflow_version,
                        descendant=descendant,
                    )
                    for row in ended
                ]
                targets = self._unfinished_children(conn, [row.id for row in ended])
                descendant = True
            return canceled

        return await self.write(work)

    def _cancel_ids(
        self, conn: Connection, run_ids: list[str], *, error: JSONObject, now: datetime
    ) -> list[Any]:
        r, s = t.runs.c, t.step_runs.c
        ended: list[Any] = []
        for chunk in _chunks(run_ids):
            ended += conn.execute(
                t.runs.update()
                .where(r.id.in_(chunk), r.status.not_in(TERMINAL_VALUES))
                .values(**_canceled(error, now))
                .returning(r.id, r.workflow_id, r.workflow_version, r.parent_run_id)
            ).all()
        for chunk in _chunks([row.id for row in ended]):
            conn.execute(
                t.step_runs.update()
                .where(s.run_id.in_(chunk), s.status.in_(IN_FLIGHT_STEP_VALUES))
                .values(status=StepStatus.CANCELED.value, completed_at=now)
            )
            for run_id in chunk:
                self.announce(conn, RUN_DONE_CHANNEL, run_id)
            self.end_waits_of_runs(conn, chunk, "the run was canceled", now)
        self._wake_waiting(conn, [row.parent_run_id for row in ended if row.parent_run_id], now)
        return ended

    def _wake_waiting(self, conn: Connection, run_ids: list[str], now: datetime) -> None:
        """Parents waiting on a run that ended here resume now and see how it ended (a parent
        canceled with its child is no longer waiting)."""
        r = t.runs.c
        woken = 0
        for chunk in _chunks(sorted(set(run_ids))):
            woken += conn.execute(
                t.runs.update()
                .where(r.id.in_(chunk), r.status == RunStatus.WAITING)
                .values(wake_at=now)
            ).rowcount
        if woken:
            self.announce(conn, WORK_CHANNEL)

    def _unfinished_children(self, conn: Connection, parent_ids: list[str]) -> list[str]:
        r = t.runs.c
        children: list[str] = []
        for chunk in _chunks(parent_ids):
            children += conn.execute(
                sa.select(r.id).where(r.parent_run_id.in_(chunk), r.status.not_in(TERMINAL_VALUES))
            ).scalars()
        return children

    async def list_step_runs(self, run_id: str) -> list[StepRunRow]:
        s = t.step_runs.c
        query = t.step_runs.select().where(s.run_id == run_id).order_by(s.position, s.attempt)
        return cast(list[StepRunRow], await self._all(query))

    # concurrency ----------------------------------------------------------------------------

    def serialize(self, conn: Connection, name: str) -> None:
        """Make transactions that name the same thing (a workflow's queue, a project's quota)
        run one after another from here to their commit (SQLite: writes are serial anyway)."""

    async def promote_queued(
        self, project_id: str, workflow_id: str, *, limit: int | None, total_limit: int | None
    ) -> list[str]:
        """Turn queued runs of a workflow into pending ones while its limits allow, in
        priority-then-age order, round-robin between concurrency keys; returns their ids."""
        r = t.runs.c
        mine = (r.project_id == project_id, r.workflow_id == workflow_id)
        active = (
            sa.select(r.concurrency_key, sa.func.count())
            .where(*mine, r.status.in_(ACTIVE_VALUES))
            .group_by(r.concurrency_key)
        )
        queued = (
            sa.select(r.id, r.concurrency_key)
            .where(*mine, r.status == RunStatus.QUEUED)
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(10_000)
        )

        def work(conn: Connection) -> list[str]:
            self.serialize(conn, f"queue/{project_id}/{workflow_id}")
            running = {row[0]: int(row[1]) for row in conn.execute(active)}
            waiting = [(row.id, row.concurrency_key) for row in conn.execute(queued)]
            chosen = choose_promotions(running, waiting, limit=limit, total_limit=total_limit)
            if chosen:
                conn.execute(
                    t.runs.update()
                    .where(r.id.in_(chosen), r.status == RunStatus.QUEUED)
                    .values(status=RunStatus.PENDING)
                )
                self.announce(conn, WORK_CHANNEL)
            return chosen

        return await self.write(work)

    async def queued_workflows(self) -> list[tuple[str, str, int]]:
        """(project id, workflow id, version) of every workflow version with queued runs."""
        r = t.runs.c
        query = (
            sa.select(r.project_id, r.workflow_id, r.workflow_version)
            .where(r.status == RunStatus.QUEUED)
            .distinct()
        )
        return await self.read(
            lambda conn: [(row[0], row[1], int(row[2])) for row in conn.execute(query)]
        )

    async def queue_stats(self) -> tuple[dict[str, tuple[int, datetime | None]], int]:
        """For ``/metrics``: ``{status: (count, oldest created_at)}`` of queued and pending runs,
        and the number of waiting event triggers; indexed counts only, never a scan of all runs."""
        r, e = t.runs.c, t.event_triggers.c
        by_status = (
            sa.select(r.status, sa.func.count(), sa.func.min(r.created_at))
            .where(r.status.in_([RunStatus.QUEUED.value, RunStatus.PENDING.value]))
            .group_by(r.status)
        )
        waiting = sa.select(sa.func.count()).where(e.status == EventStatus.WAITING.value)

        def work(conn: Connection) -> tuple[dict[str, tuple[int, datetime | None]], int]:
            runs = {str(row[0]): (int(row[1]), row[2]) for row in conn.execute(by_status)}
            return runs, int(conn.execute(waiting).scalar_one())

        return await self.read(work)

    async def queue_position(self, run: RunRow) -> tuple[int, int, int]:
        """(position among queued runs of its key, 1 = next; active runs of its key; active
        runs of the workflow)."""
        r = t.runs.c
        same_key = (
            r.concurrency_key.is_(None)
            if run["concurrency_key"] is None
            else r.concurrency_key == run["concurrency_key"]
        )
        ahead = sa.or_(
            r.priority > run["priority"],
            sa.and_(r.priority == run["priority"], r.created_at < run["created_at"]),
            sa.and_(
                r.priority == run["priority"], r.created_at == run["created_at"], r.id < run["id"]
            ),
        )
        mine = sa.and_(r.project_id == run["project_id"], r.workflow_id == run["workflow_id"])
        position = sa.select(sa.func.count()).where(
            mine, same_key, r.status == RunStatus.QUEUED, ahead
        )
        key_active = sa.select(sa.func.count()).where(mine, same_key, r.status.in_(ACTIVE_VALUES))
        all_active = sa.select(sa.func.count()).where(mine, r.status.in_(ACTIVE_VALUES))

        def work(conn: Connection) -> tuple[int, int, int]:
            return (
                int(conn.execute(position).scalar_one()) + 1,
                int(conn.execute(key_active).scalar_one()),
                int(conn.execute(all_active).scalar_one()),
            )

        return await self.read(work)

    # worker ---------------------------------------------------------------------------------

    # The hot statements of the engine are built once per store with bound parameters: building
    # a SQLAlchemy statement (and its cache key) costs more than running it on SQLite.

    @functools.cached_property
    def _claim(self) -> sa.Executable:
        """Take up to ``:limit`` claimable runs, priority then age: pending ones, waiting ones
        whose time came, and running ones whose lease lapsed. ``SKIP LOCKED`` lets PostgreSQL
        workers pass each other's candidates; SQLite renders no locking clause (its writes are
        serial), and the outer ``claimable`` re-check covers both."""
        r = t.runs.c
        now = sa.bindparam("now", type_=t.UTCMillis())
        claimable = sa.or_(
            r.status == RunStatus.PENDING,
            sa.and_(r.status == RunStatus.WAITING, r.wake_at <= now),
            sa.and_(r.status == RunStatus.RUNNING, r.lease_expires_at < now),
        )
        candidates = (
            sa.select(r.id)
            .where(claimable)
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            t.runs.update()
            .where(r.id.in_(candidates), claimable)
            .values(
                status=RunStatus.RUNNING.value,
                lease_owner=sa.bindparam("owner", type_=sa.String()),
                lease_expires_at=sa.bindparam("lease_until", type_=t.UTCMillis()),
                lease_epoch=r.lease_epoch + 1,
                started_at=sa.func.coalesce(r.started_at, now),
            )
            .returning(*t.runs.c)
        )

    @functools.cached_property
    def _next_wake(self) -> sa.Executable:
        r = t.runs.c
        return sa.select(sa.func.min(r.wake_at)).where(r.status == RunStatus.WAITING)

    async def next_wake_at(self) -> datetime | None:
        """When the earliest waiting run wants to be resumed."""
        found = await self._one(self._next_wake)
        return None if found is None else cast("datetime | None", next(iter(found.values())))

    async def claim_runs(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[RunRow]:
        params = {"owner": owner, "limit": limit, "now": now, "lease_until": lease_until}
        return cast(
            list[RunRow],
            await self.write(
                lambda conn: [_row(found) for found in conn.execute(self._claim, params)]
            ),
        )

    @functools.cached_property
    def _leased(self) -> sa.ColumnElement[bool]:
        """The run is still ours (``_lease_params``). The parameters are not named after columns:
        an UPDATE's parameters with a column's name would join its SET clause."""
        r = t.runs.c
        return sa.and_(
            r.id == sa.bindparam("held_run", type_=sa.String()),
            r.lease_owner == sa.bindparam("held_by", type_=sa.String()),
            r.lease_epoch == sa.bindparam("held_epoch", type_=sa.Integer()),
            r.status == RunStatus.RUNNING,
        )

    @staticmethod
    def _lease_params(lease: Lease) -> dict[str, Any]:
        return {"held_run": lease.run_id, "held_by": lease.owner, "held_epoch": lease.epoch}

    @functools.cached_property
    def _step_upsert(self) -> Any:
        return self.upsert(t.step_runs, ("run_id", "step_id", "attempt"))

    async def save_progress(self, lease: Lease, progress: RunProgress) -> bool:
        """Commit finished steps and run changes if the lease still holds; False if it does not."""
        changes = dict(progress.run_changes)
        if changes.get("status") in _RELEASING:
            changes |= {"lease_owner": None, "lease_expires_at": None}
        lease_params = self._lease_params(lease)
        update: sa.Executable
        if progress.wait_for_run is not None and progress.now is not None:
            changes["wake_at"] = _wake_if_ended(progress.wait_for_run, progress.now)
            update = t.runs.update().where(self._leased).values(**changes)
        else:
            update = self._run_update(frozenset(changes))
            lease_params |= {f"new_{name}": value for name, value in changes.items()}
        steps = [dict(s) for s in progress.steps]
        upsert = self._step_upsert
        wake = None
        if progress.wake_run is not None and progress.now is not None:
            r = t.runs.c
            wake = (
                t.runs.update()
                .where(r.id == progress.wake_run, r.status == RunStatus.WAITING)
                .values(wake_at=progress.now)
            )

        status = changes.get("status")
        lock_other = None
        if progress.wait_for_run is not None:
            # FOR SHARE (PostgreSQL) orders this park after the other run's final commit, or
            # that commit after this park: then one of the two sees the other.
            r = t.runs.c
            lock_other = (
                sa.select(r.id).where(r.id == progress.wait_for_run).with_for_update(read=True)
            )

        ends = status in TERMINAL_VALUES
        in_flight = {
            "ended_run": lease.run_id,
            "end_error": changes.get("error"),
            "end_at": changes.get("completed_at"),
        }

        def work(conn: Connection) -> None:
            if lock_other is not None:
                conn.execute(lock_other)
            if conn.execute(update, lease_params).rowcount != 1:
                raise _LeaseLost
            if ends:
                # An attempt still shown running or waiting when the run ends (a crash ended
                # it) ends with it; the steps this commit writes come after and win.
                conn.execute(self._end_in_flight_steps, in_flight)
            if steps:
                conn.execute(upsert, steps)
            if progress.event_waits:
                self.open_waits(conn, progress.event_waits, progress.event_waits[0]["requested_at"])
            ended_at = changes.get("completed_at")
            if status in TERMINAL_VALUES and isinstance(ended_at, datetime):
                self.end_waits_of_runs(conn, [lease.run_id], "the run ended", ended_at)
            if wake is not None and conn.execute(wake).rowcount:
                self.announce(conn, WORK_CHANNEL)
            if status in TERMINAL_VALUES:
                self.announce(conn, RUN_DONE_CHANNEL, lease.run_id)
            else:
                if status == RunStatus.WAITING.value:
                    self.announce(conn, WORK_CHANNEL)
                self.announce(conn, RUN_CHANGED_CHANNEL, lease.run_id)

        try:
            await self.write(work)
        except _LeaseLost:
            return False
        return True

    def _run_update(self, columns: frozenset[str]) -> sa.Executable:
        """The leased run's update of these columns, from parameters ``new_<column>``; built
        once per set of columns (a handful: ending, parking, a crash, a renewal)."""
        found = self._run_updates.get(columns)
        if found is None:
            c = t.runs.c
            values: dict[str, Any] = {
                name: sa.bindparam(f"new_{name}", type_=c[name].type) for name in columns
            }
            found = (
                t.runs.update().where(self._leased).values(values or {"lease_epoch": c.lease_epoch})
            )
            self._run_updates[columns] = found
        return found

    @functools.cached_property
    def _run_updates(self) -> dict[frozenset[str], sa.Executable]:
        return {}

    @functools.cached_property
    def _end_in_flight_steps(self) -> sa.Executable:
        s = t.step_runs.c
        return (
            t.step_runs.update()
            .where(
                s.run_id == sa.bindparam("ended_run", type_=sa.String()),
                s.status.in_(IN_FLIGHT_STEP_VALUES),
            )
            .values(
                status=StepStatus.FAILED.value,
                error=sa.bindparam("end_error", type_=s.error.type),
                completed_at=sa.bindparam("end_at", type_=s.completed_at.type),
            )
        )

    async def renew_lease(self, lease: Lease, *, lease_until: datetime) -> bool:
        update = self._run_update(frozenset({"lease_expires_at"}))
        params = self._lease_params(lease) | {"new_lease_expires_at": lease_until}
        return await self.write(lambda conn: conn.execute(update, params).rowcount == 1)

    async def latest_runs(self, project_id: str, workflow_ids: Sequence[str]) -> list[RunRow]:
        """The newest run of each of these workflows (none for a workflow without runs), in
        one statement: per workflow, a correlated subquery walks
        ``ix_runs_project_workflow_created`` backwards and stops at its first row, however
        many runs there are. Runs created in the same millisecond tie: one of them is taken."""
        if not workflow_ids:
            return []
        w = t.workflows.c
        newest = t.runs.alias("newest")
        newest_id = (
            sa.select(newest.c.id)
            .where(newest.c.workflow_id == w.id, newest.c.project_id == project_id)
            .order_by(newest.c.created_at.desc())
            .limit(1)
            .correlate(t.workflows)
            .scalar_subquery()
        )
        ids = sa.select(newest_id).where(w.project_id == project_id, w.id.in_(list(workflow_ids)))
        query = t.runs.select().where(t.runs.c.id.in_(ids))
        return cast(list[RunRow], await self._all(query))
