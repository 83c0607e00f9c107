"""The store on SQLAlchemy Core, shared by SQLite and PostgreSQL; dialect quirks in subclasses."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowgate.store import tables as t
from flowgate.store.base import (
    TERMINAL_RUN_STATUSES,
    ConnectionRow,
    Duplicate,
    InsertedRun,
    KeyRow,
    Lease,
    NewRun,
    Page,
    ProjectRow,
    RunFilter,
    RunProgress,
    RunRow,
    RunStatus,
    StepRunRow,
    WorkflowRow,
    WorkflowVersionRow,
)
from flowgate.types import JSONObject

TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_RUN_STATUSES)


class _LeaseLost(Exception):
    """Raised inside a transaction to roll it back when the lease guard matched no row."""


def json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _row(row: sa.Row[Any]) -> Any:
    return dict(row._mapping)


class SqlStore:
    """One transaction per method. Subclasses give the engine, upserts and the claim query."""

    is_sqlite = False

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. SQLite serializes these in-process (see ``SqliteStore``)."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as exc:
            raise Duplicate(str(exc.orig)) from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` in this dialect."""
        raise NotImplementedError

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # projects -------------------------------------------------------------------------------

    async def ensure_project(self, row: ProjectRow) -> None:
        async with self.write() as conn:
            await conn.execute(self.insert_ignore(t.projects).values(**row))

    async def insert_project(self, row: ProjectRow) -> None:
        async with self.write() as conn:
            await conn.execute(t.projects.insert().values(**row))

    async def get_project(self, project_id: str) -> ProjectRow | None:
        async with self.read() as conn:
            result = await conn.execute(t.projects.select().where(t.projects.c.id == project_id))
            found = result.first()
        return None if found is None else cast(ProjectRow, _row(found))

    async def list_projects(self, project_ids: Sequence[str] | None) -> list[ProjectRow]:
        query = t.projects.select().order_by(t.projects.c.created_at, t.projects.c.id)
        if project_ids is not None:
            query = query.where(t.projects.c.id.in_(project_ids))
        async with self.read() as conn:
            return [cast(ProjectRow, _row(r)) for r in await conn.execute(query)]

    # keys -----------------------------------------------------------------------------------

    async def insert_key(self, row: KeyRow) -> None:
        async with self.write() as conn:
            await conn.execute(t.api_keys.insert().values(**row))

    async def upsert_bootstrap_key(self, row: KeyRow) -> None:
        """Make the bootstrap key exist with exactly this hash, replacing an earlier one."""
        async with self.write() as conn:
            await conn.execute(t.api_keys.delete().where(t.api_keys.c.id == row["id"]))
            await conn.execute(t.api_keys.delete().where(t.api_keys.c.key_hash == row["key_hash"]))
            await conn.execute(t.api_keys.insert().values(**row))

    async def find_key(self, key_hash: str) -> tuple[KeyRow, ProjectRow] | None:
        project_cols = [c.label(f"project__{c.name}") for c in t.projects.c]
        query = (
            sa.select(t.api_keys, *project_cols)
            .join(t.projects, t.projects.c.id == t.api_keys.c.project_id)
            .where(t.api_keys.c.key_hash == key_hash)
        )
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        if found is None:
            return None
        mapping = _row(found)
        key = {c.name: mapping[c.name] for c in t.api_keys.c}
        project = {c.name: mapping[f"project__{c.name}"] for c in t.projects.c}
        return cast(KeyRow, key), cast(ProjectRow, project)

    async def list_keys(self, project_id: str) -> list[KeyRow]:
        query = (
            t.api_keys.select()
            .where(t.api_keys.c.project_id == project_id)
            .order_by(t.api_keys.c.created_at, t.api_keys.c.id)
        )
        async with self.read() as conn:
            return [cast(KeyRow, _row(r)) for r in await conn.execute(query)]

    async def get_key(self, project_id: str, key_id: str) -> KeyRow | None:
        query = t.api_keys.select().where(
            t.api_keys.c.project_id == project_id, t.api_keys.c.id == key_id
        )
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else cast(KeyRow, _row(found))

    async def revoke_key(self, project_id: str, key_id: str, *, now: datetime) -> KeyRow | None:
        async with self.write() as conn:
            await conn.execute(
                t.api_keys.update()
                .where(
                    t.api_keys.c.project_id == project_id,
                    t.api_keys.c.id == key_id,
                    t.api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            found = (
                await conn.execute(
                    t.api_keys.select().where(
                        t.api_keys.c.project_id == project_id, t.api_keys.c.id == key_id
                    )
                )
            ).first()
        return None if found is None else cast(KeyRow, _row(found))

    async def touch_key(self, key_id: str, *, now: datetime) -> None:
        async with self.write() as conn:
            await conn.execute(
                t.api_keys.update().where(t.api_keys.c.id == key_id).values(last_used_at=now)
            )

    # workflows ------------------------------------------------------------------------------

    async def insert_workflow(self, row: WorkflowRow) -> None:
        """Raises ``Duplicate`` when the id or the name is taken."""
        async with self.write() as conn:
            await conn.execute(t.workflows.insert().values(**row))
            await conn.execute(
                t.workflow_versions.insert().values(
                    workflow_id=row["id"],
                    version=row["version"],
                    definition=row["definition"],
                    created_at=row["updated_at"],
                )
            )

    async def get_workflow(self, project_id: str, id_or_name: str) -> WorkflowRow | None:
        by_id = t.workflows.select().where(
            t.workflows.c.project_id == project_id, t.workflows.c.id == id_or_name
        )
        by_name = t.workflows.select().where(
            t.workflows.c.project_id == project_id, t.workflows.c.name == id_or_name
        )
        async with self.read() as conn:
            found = (await conn.execute(by_id)).first()
            if found is None:
                found = (await conn.execute(by_name)).first()
        return None if found is None else cast(WorkflowRow, _row(found))

    async def list_workflows(self, project_id: str, page: Page) -> list[WorkflowRow]:
        wf = t.workflows.c
        query = (
            t.workflows.select()
            .where(wf.project_id == project_id)
            .order_by(wf.created_at.desc(), wf.id.desc())
            .limit(page.limit)
        )
        if page.after is not None:
            created, last_id = page.after
            query = query.where(
                sa.or_(wf.created_at < created, sa.and_(wf.created_at == created, wf.id < last_id))
            )
        async with self.read() as conn:
            return [cast(WorkflowRow, _row(r)) for r in await conn.execute(query)]

    async def update_workflow(self, row: WorkflowRow, *, new_version: bool) -> None:
        """Raises ``Duplicate`` when the new name is taken."""
        values = {k: v for k, v in row.items() if k not in ("id", "project_id", "created_at")}
        async with self.write() as conn:
            await conn.execute(
                t.workflows.update().where(t.workflows.c.id == row["id"]).values(**values)
            )
            if new_version:
                await conn.execute(
                    t.workflow_versions.insert().values(
                        workflow_id=row["id"],
                        version=row["version"],
                        definition=row["definition"],
                        created_at=row["updated_at"],
                    )
                )

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRow]:
        query = (
            t.workflow_versions.select()
            .where(t.workflow_versions.c.workflow_id == workflow_id)
            .order_by(t.workflow_versions.c.version.desc())
        )
        async with self.read() as conn:
            return [cast(WorkflowVersionRow, _row(r)) for r in await conn.execute(query)]

    async def get_workflow_version(
        self, workflow_id: str, version: int
    ) -> WorkflowVersionRow | None:
        query = t.workflow_versions.select().where(
            t.workflow_versions.c.workflow_id == workflow_id,
            t.workflow_versions.c.version == version,
        )
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else cast(WorkflowVersionRow, _row(found))

    # connections ----------------------------------------------------------------------------

    async def get_connection(self, project_id: str, connection_id: str) -> ConnectionRow | None:
        query = t.connections.select().where(
            t.connections.c.project_id == project_id, t.connections.c.id == connection_id
        )
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else cast(ConnectionRow, _row(found))

    # runs -----------------------------------------------------------------------------------

    async def insert_runs(self, runs: Sequence[NewRun]) -> list[InsertedRun]:
        """Insert runs in one transaction; a taken idempotency key answers with its run instead."""
        results: list[InsertedRun] = []
        async with self.write() as conn:
            for new in runs:
                results.append(await self._insert_run(conn, new))
        return results

    async def _insert_run(self, conn: AsyncConnection, new: NewRun) -> InsertedRun:
        claim = new.idempotency
        run = new.row
        if claim is not None:
            ik = t.idempotency_keys.c
            same_key = sa.and_(
                ik.project_id == run["project_id"],
                ik.workflow_id == run["workflow_id"],
                ik.key == claim.key,
            )
            await conn.execute(
                t.idempotency_keys.delete().where(same_key, ik.expires_at <= run["created_at"])
            )
            inserted = await conn.execute(
                self.insert_ignore(t.idempotency_keys).values(
                    project_id=run["project_id"],
                    workflow_id=run["workflow_id"],
                    key=claim.key,
                    run_id=run["id"],
                    input=claim.input,
                    created_at=run["created_at"],
                    expires_at=claim.expires_at,
                )
            )
            if inserted.rowcount == 0:
                existing = (
                    await conn.execute(sa.select(ik.run_id, ik.input).where(same_key))
                ).one()
                found = (
                    await conn.execute(t.runs.select().where(t.runs.c.id == existing.run_id))
                ).one()
                return InsertedRun(run=_row(found), replayed=True, stored_input=existing.input)
        await conn.execute(t.runs.insert().values(**run))
        return InsertedRun(run=run)

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
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        if found is None:
            return None
        row = _row(found)
        stored = row.pop("idempotency_input")
        return InsertedRun(run=row, replayed=True, stored_input=stored)

    async def get_run(self, project_id: str | None, run_id: str) -> RunRow | None:
        query = t.runs.select().where(t.runs.c.id == run_id)
        if project_id is not None:
            query = query.where(t.runs.c.project_id == project_id)
        async with self.read() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else cast(RunRow, _row(found))

    async def list_runs(self, project_id: str, where: RunFilter, page: Page) -> list[RunRow]:
        r = t.runs.c
        query = (
            t.runs.select()
            .where(r.project_id == project_id)
            .order_by(r.created_at.desc(), r.id.desc())
            .limit(page.limit)
        )
        if where.workflow_id is not None:
            query = query.where(r.workflow_id == where.workflow_id)
        if where.statuses:
            query = query.where(r.status.in_(list(where.statuses)))
        if where.source is not None:
            query = query.where(r.source == where.source)
        if where.created_after is not None:
            query = query.where(r.created_at > where.created_after)
        if page.after is not None:
            created, last_id = page.after
            query = query.where(
                sa.or_(r.created_at < created, sa.and_(r.created_at == created, r.id < last_id))
            )
        async with self.read() as conn:
            return [cast(RunRow, _row(row)) for row in await conn.execute(query)]

    async def list_step_runs(self, run_id: str) -> list[StepRunRow]:
        s = t.step_runs.c
        query = t.step_runs.select().where(s.run_id == run_id).order_by(s.position, s.attempt)
        async with self.read() as conn:
            return [cast(StepRunRow, _row(row)) for row in await conn.execute(query)]

    async def cancel_run(
        self, project_id: str, run_id: str, *, error: JSONObject, now: datetime
    ) -> RunRow | None:
        """Cancel a run that has not ended; returns the run as it is afterwards (None: unknown)."""
        r = t.runs.c
        async with self.write() as conn:
            await conn.execute(
                t.runs.update()
                .where(
                    r.id == run_id,
                    r.project_id == project_id,
                    r.status.not_in(TERMINAL_VALUES),
                )
                .values(
                    status=RunStatus.CANCELED,
                    error=error,
                    completed_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    queued_reason=None,
                )
            )
            found = (
                await conn.execute(
                    t.runs.select().where(r.id == run_id, r.project_id == project_id)
                )
            ).first()
        return None if found is None else cast(RunRow, _row(found))

    # worker ---------------------------------------------------------------------------------

    def claimable(self, now: datetime) -> sa.ColumnElement[bool]:
        """Runs a worker may take: pending ones, and running ones whose lease lapsed."""
        r = t.runs.c
        return sa.or_(
            r.status == RunStatus.PENDING,
            sa.and_(r.status == RunStatus.RUNNING, r.lease_expires_at < now),
        )

    def claim_values(self, *, owner: str, now: datetime, lease_until: datetime) -> dict[str, Any]:
        r = t.runs.c
        return {
            "status": RunStatus.RUNNING.value,
            "lease_owner": owner,
            "lease_expires_at": lease_until,
            "lease_epoch": r.lease_epoch + 1,
            "started_at": sa.func.coalesce(r.started_at, clock_bind(now)),
        }

    async def claim_runs(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[RunRow]:
        raise NotImplementedError

    def _guard(self, lease: Lease) -> sa.ColumnElement[bool]:
        r = t.runs.c
        return sa.and_(
            r.id == lease.run_id,
            r.lease_owner == lease.owner,
            r.lease_epoch == lease.epoch,
            r.status == RunStatus.RUNNING,
        )

    async def save_progress(self, lease: Lease, progress: RunProgress) -> bool:
        """Commit finished steps and run changes if the lease still holds; False if it does not."""
        changes = dict(progress.run_changes) or {"lease_epoch": t.runs.c.lease_epoch}
        if changes.get("status") in TERMINAL_VALUES:
            changes |= {"lease_owner": None, "lease_expires_at": None}
        try:
            async with self.write() as conn:
                result = await conn.execute(
                    t.runs.update().where(self._guard(lease)).values(**changes)
                )
                if result.rowcount != 1:
                    raise _LeaseLost
                if progress.steps:
                    await conn.execute(t.step_runs.insert(), [dict(s) for s in progress.steps])
        except _LeaseLost:
            return False
        return True

    async def renew_lease(self, lease: Lease, *, lease_until: datetime) -> bool:
        async with self.write() as conn:
            result = await conn.execute(
                t.runs.update().where(self._guard(lease)).values(lease_expires_at=lease_until)
            )
        return bool(result.rowcount == 1)


def clock_bind(now: datetime) -> sa.BindParameter[datetime]:
    return sa.bindparam("now_started", now, type_=t.UTCMillis())
