"""Event triggers in SQL (DESIGN §6): opening waits, sending, cancelling, expiring, listing.

Every change of a key's waiting trigger happens under a per-(project, key) lock (PostgreSQL's
advisory transaction lock; SQLite has one writer anyway) and as a compare-and-set on its
``waiting`` status, so of a send, a timeout and a cancel arriving together exactly one wins, and
a buffered event is taken by exactly one wait. A send changes the trigger, the waiting step
(completed, the payload as its output) and the run (woken) in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowgate.statuses import EventStatus, RunStatus, StepStatus
from flowgate.store import tables as t
from flowgate.store.base import (
    EventFilter,
    EventKeyTaken,
    EventTriggerRow,
    Page,
    SentEvent,
)
from flowgate.types import JSON

WORKFLOW_STEP = "workflow_step"
#: Channel announcing a trigger's change, its project and key as payload (live streams).
EVENT_CHANNEL = "flowgate_event"
WORK_CHANNEL = "flowgate_work"
_WAITING = EventStatus.WAITING.value
_e = t.event_triggers.c

# Every run's end runs it: built once (a statement costs more to build than to run on SQLite).
_END_WAITS_OF_RUNS = (
    t.event_triggers.update()
    .where(_e.workflow_run_id.in_(sa.bindparam("run_ids", expanding=True)), _e.status == _WAITING)
    .values(
        status=EventStatus.CANCELED.value,
        error=sa.bindparam("end_error", type_=sa.String()),
        ended_at=sa.bindparam("end_at", type_=t.UTCMillis()),
    )
    .returning(*t.event_triggers.c)
)
T = TypeVar("T")


def _lock(store: EventStoreMixin, conn: Connection, project_id: str, keys: Sequence[str]) -> None:
    """Serialize every transaction that changes these keys' triggers (sorted: no deadlock)."""
    for key in sorted(set(keys)):
        store.serialize(conn, f"event:{project_id}:{key}")


def _chunks(items: Sequence[T], size: int = 500) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _row(found: Any) -> EventTriggerRow:
    return cast(EventTriggerRow, dict(found._mapping))


class EventStoreMixin:
    """Mixed into ``SqlStore``, which provides the four methods below."""

    async def read(self, work: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    async def write(self, work: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    def serialize(self, conn: Connection, name: str) -> None:
        raise NotImplementedError

    def announce(self, conn: Connection, channel: str, payload: str = "") -> None:
        raise NotImplementedError

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> Any:
        raise NotImplementedError

    # -- opening waits ------------------------------------------------------------------------

    def open_waits(self, conn: Connection, rows: Sequence[EventTriggerRow], now: datetime) -> None:
        """Insert waiting triggers in ``conn``'s transaction; raises EventKeyTaken when a key
        already waits. An unexpired buffered event for one of the keys resolves it at once
        (the first such key in ``rows`` order)."""
        if not rows:
            return
        project_id = rows[0]["project_id"]
        keys = [row["event_key"] for row in rows]
        _lock(self, conn, project_id, keys)
        taken = conn.execute(
            sa.select(_e.event_key).where(
                _e.project_id == project_id, _e.event_key.in_(keys), _e.status == _WAITING
            )
        ).first()
        if taken is not None:
            raise EventKeyTaken(taken.event_key)
        conn.execute(t.event_triggers.insert(), [dict(row) for row in rows])
        b = t.buffered_events.c
        buffered = {
            found.event_key: found
            for found in conn.execute(
                sa.select(b.event_key, b.payload, b.sent_by).where(
                    b.project_id == project_id, b.event_key.in_(keys), b.expires_at > now
                )
            )
        }
        for row in rows:
            event = buffered.get(row["event_key"])
            if event is not None:
                conn.execute(
                    t.buffered_events.delete().where(
                        b.project_id == project_id, b.event_key == row["event_key"]
                    )
                )
                self._resolve(conn, row, event.payload, event.sent_by, now, idempotency_key=None)
                return

    async def create_job_wait(self, row: EventTriggerRow) -> EventTriggerRow:
        """A standalone (``job_run``) wait; raises EventKeyTaken. Returns it as stored (already
        received when a buffered event was waiting for it)."""

        def work(conn: Connection) -> EventTriggerRow:
            self.open_waits(conn, [row], row["requested_at"])
            return self._by_id(conn, row["project_id"], row["id"])

        return await self.write(work)

    # -- sending ------------------------------------------------------------------------------

    def _resolve(
        self,
        conn: Connection,
        trigger: EventTriggerRow,
        payload: JSON,
        sent_by: str | None,
        now: datetime,
        *,
        idempotency_key: str | None,
    ) -> EventTriggerRow | None:
        """``waiting`` → ``received`` with ``payload``; the step completes with it, its other
        ``anyOf`` triggers are canceled, the run wakes. None if it was no longer waiting."""
        self._lock_run(conn, trigger)
        found = conn.execute(
            t.event_triggers.update()
            .where(
                _e.project_id == trigger["project_id"],
                _e.id == trigger["id"],
                _e.status == _WAITING,
            )
            .values(
                status=EventStatus.RECEIVED.value,
                response_payload=payload,
                received_at=now,
                ended_at=now,
                sent_by=sent_by,
                idempotency_key=idempotency_key,
            )
            .returning(*t.event_triggers.c)
        ).first()
        if found is None:
            return None
        resolved = _row(found)
        step_run_id = resolved["workflow_step_run_id"]
        if resolved["source_type"] == WORKFLOW_STEP and step_run_id is not None:
            self._end_siblings(conn, resolved, now)
            output = (
                {"key": resolved["event_key"], "payload": payload}
                if resolved["any_of"]
                else payload
            )
            s = t.step_runs.c
            conn.execute(
                t.step_runs.update()
                .where(s.id == step_run_id, s.status == StepStatus.WAITING.value)
                .values(status=StepStatus.COMPLETED.value, output=output, completed_at=now)
            )
            self._wake(conn, str(resolved["workflow_run_id"]), now)
        self._announce_change(conn, resolved)
        return resolved

    def _lock_run(self, conn: Connection, trigger: EventTriggerRow) -> None:
        """Lock the trigger's run before the trigger itself: a run that ends or is canceled
        locks the run, then its steps, then its triggers, so every transaction takes them in
        that order (no deadlock), and two sends to keys of one ``anyOf`` wait are serialized
        by their common run."""
        run_id = trigger["workflow_run_id"]
        if run_id is not None:
            r = t.runs.c
            conn.execute(sa.select(r.id).where(r.id == run_id).with_for_update())

    def _announce_change(self, conn: Connection, trigger: EventTriggerRow) -> None:
        self.announce(conn, EVENT_CHANNEL, f"{trigger['project_id']}:{trigger['event_key']}")

    def _end_siblings(self, conn: Connection, resolved: EventTriggerRow, now: datetime) -> None:
        """The other keys of an ``anyOf`` wait are canceled once one of them is received."""
        conn.execute(
            t.event_triggers.update()
            .where(
                _e.project_id == resolved["project_id"],
                _e.workflow_step_run_id == resolved["workflow_step_run_id"],
                _e.id != resolved["id"],
                _e.status == _WAITING,
            )
            .values(
                status=EventStatus.CANCELED.value,
                error=f"another key of the wait was received: {resolved['event_key']}",
                ended_at=now,
            )
        )

    def _wake(self, conn: Connection, run_id: str, now: datetime) -> None:
        r = t.runs.c
        woken = conn.execute(
            t.runs.update()
            .where(r.id == run_id, r.status == RunStatus.WAITING.value)
            .values(wake_at=now)
        ).rowcount
        if woken:
            self.announce(conn, WORK_CHANNEL)

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
    ) -> SentEvent:
        """Resolve the key's waiting trigger (one past ``expires_at`` times out instead); else
        keep the event until ``buffer_until`` if given (unless the newest trigger was received:
        a resend is answered, not buffered); else report the newest trigger of the key (or
        None)."""

        def work(conn: Connection) -> SentEvent:
            _lock(self, conn, project_id, [key])
            waiting = self._live(conn, self._waiting(conn, project_id, key), now)
            if waiting is not None:
                resolved = self._resolve(
                    conn, waiting, payload, sent_by, now, idempotency_key=idempotency_key
                )
                if resolved is not None:
                    return SentEvent(trigger=resolved, resolved=True)
            newest = self._newest(conn, project_id, key)
            received = newest is not None and newest["status"] == EventStatus.RECEIVED
            if buffer_until is not None and not received:
                self._buffer(conn, project_id, key, payload, sent_by, now, buffer_until)
                return SentEvent(trigger=None, buffered_until=buffer_until)
            return SentEvent(trigger=newest)

        return await self.write(work)

    def _buffer(
        self,
        conn: Connection,
        project_id: str,
        key: str,
        payload: JSON,
        sent_by: str | None,
        now: datetime,
        until: datetime,
    ) -> None:
        """Keep the event for the first wait on ``key`` before ``until``; a later buffered send
        of the same key replaces it."""
        conn.execute(
            self.upsert(t.buffered_events, ("project_id", "event_key")).values(
                project_id=project_id,
                event_key=key,
                payload=payload,
                sent_by=sent_by,
                created_at=now,
                expires_at=until,
            )
        )

    async def send_events_by_prefix(
        self, project_id: str, prefix: str, payload: JSON, *, sent_by: str | None, now: datetime
    ) -> list[EventTriggerRow]:
        """Resolve every waiting trigger of the project whose key starts with ``prefix``."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

        def work(conn: Connection) -> list[EventTriggerRow]:
            found = conn.execute(
                sa.select(*t.event_triggers.c).where(
                    _e.project_id == project_id,
                    _e.status == _WAITING,
                    _e.event_key.like(f"{escaped}%", escape="\\"),
                )
            ).all()
            rows = [_row(item) for item in found]
            _lock(self, conn, project_id, [row["event_key"] for row in rows])
            resolved = [
                self._resolve(conn, row, payload, sent_by, now, idempotency_key=None)
                for row in rows
                if self._live(conn, row, now) is not None
            ]
            return [row for row in resolved if row is not None]

        return await self.write(work)

    # -- cancelling and expiring ----------------------------------------------------------------

    async def cancel_event(
        self, project_id: str, key: str, *, now: datetime
    ) -> tuple[EventTriggerRow | None, bool]:
        """Cancel the key's waiting trigger: ``(it, True)``; or ``(newest, False)`` when none
        waits (``newest`` None when the key is unknown). The run of a step whose every trigger
        has ended wakes and fails the step."""

        def work(conn: Connection) -> tuple[EventTriggerRow | None, bool]:
            _lock(self, conn, project_id, [key])
            waiting = self._live(conn, self._waiting(conn, project_id, key), now)
            if waiting is None:
                return self._newest(conn, project_id, key), False
            ended = self._end(conn, waiting, EventStatus.CANCELED, "canceled by user", now)
            if ended is None:  # its run ended it while this waited for the run's lock
                return self._newest(conn, project_id, key), False
            return ended, True

        return await self.write(work)

    def _end(
        self,
        conn: Connection,
        trigger: EventTriggerRow,
        status: EventStatus,
        error: str,
        now: datetime,
    ) -> EventTriggerRow | None:
        self._lock_run(conn, trigger)
        found = conn.execute(
            t.event_triggers.update()
            .where(
                _e.project_id == trigger["project_id"],
                _e.id == trigger["id"],
                _e.status == _WAITING,
            )
            .values(status=status.value, error=error, ended_at=now)
            .returning(*t.event_triggers.c)
        ).first()
        if found is None:
            return None
        ended = _row(found)
        run_id = ended["workflow_run_id"]
        if run_id is not None and not self._siblings_waiting(conn, ended):
            self._wake(conn, run_id, now)
        self._announce_change(conn, ended)
        return ended

    def _live(
        self, conn: Connection, trigger: EventTriggerRow | None, now: datetime
    ) -> EventTriggerRow | None:
        """``trigger`` if it may still be sent to or canceled; a waiting trigger already past
        its ``expires_at`` times out here instead (its run's worker, or the job-wait sweep, may
        not have come yet), so a send or cancel after the deadline loses to the timeout."""
        if trigger is None or trigger["expires_at"] > now:
            return trigger
        self._end(conn, trigger, EventStatus.TIMED_OUT, "timed out", now)
        return None

    def _siblings_waiting(self, conn: Connection, trigger: EventTriggerRow) -> bool:
        if trigger["workflow_step_run_id"] is None:
            return False
        return (
            conn.execute(
                sa.select(_e.id)
                .where(
                    _e.project_id == trigger["project_id"],
                    _e.workflow_step_run_id == trigger["workflow_step_run_id"],
                    _e.status == _WAITING,
                )
                .limit(1)
            ).first()
            is not None
        )

    async def expire_event_triggers(
        self, project_id: str, trigger_ids: Sequence[str], *, now: datetime
    ) -> list[EventTriggerRow]:
        """Time out those of ``trigger_ids`` still waiting past ``expires_at``; returns all of
        them as they are afterwards (a send that came first shows as ``received``)."""

        def work(conn: Connection) -> list[EventTriggerRow]:
            rows = self._by_ids(conn, project_id, trigger_ids)
            _lock(self, conn, project_id, [row["event_key"] for row in rows])
            for row in rows:
                if row["status"] == _WAITING and row["expires_at"] <= now:
                    self._end(conn, row, EventStatus.TIMED_OUT, "timed out", now)
            return self._by_ids(conn, project_id, trigger_ids)

        return await self.write(work)

    async def expire_due_waits(
        self, *, now: datetime, limit: int = 1000
    ) -> tuple[list[EventTriggerRow], datetime | None]:
        """Time out up to ``limit`` waiting triggers past ``expires_at``, oldest first, in one
        statement (an indexed range on status and expiry), so that thousands due together end
        on time; their runs are already due (``wake_at`` ≤ ``expires_at``) and act on it when
        a worker takes them. Returns what it ended, and the next waiting expiry (or None).

        The triggers' runs are locked first, in id order, as a send does before its trigger:
        a send to one key of an ``anyOf`` wait (its run, then its triggers) and this sweep
        cannot each hold what the other needs."""
        due = (
            sa.select(_e.project_id, _e.id, _e.workflow_run_id)
            .where(_e.status == _WAITING, _e.expires_at <= now)
            .order_by(_e.expires_at)
            .limit(limit)
        )
        upcoming = sa.select(sa.func.min(_e.expires_at)).where(_e.status == _WAITING)

        def work(conn: Connection) -> tuple[list[EventTriggerRow], datetime | None]:
            found = conn.execute(due).all()
            run_ids = sorted({row.workflow_run_id for row in found if row.workflow_run_id})
            for chunk in _chunks(run_ids):
                r = t.runs.c
                conn.execute(
                    sa.select(r.id).where(r.id.in_(chunk)).order_by(r.id).with_for_update()
                )
            ended: list[EventTriggerRow] = []
            for chunk in _chunks([(row.project_id, row.id) for row in found]):
                ended += [
                    _row(row)
                    for row in conn.execute(
                        t.event_triggers.update()
                        .where(sa.tuple_(_e.project_id, _e.id).in_(chunk), _e.status == _WAITING)
                        .values(status=EventStatus.TIMED_OUT.value, error="timed out", ended_at=now)
                        .returning(*t.event_triggers.c)
                    ).all()
                ]
            for trigger in ended:
                self._announce_change(conn, trigger)
            return ended, conn.execute(upcoming).scalar()

        return await self.write(work)

    def end_waits_of_runs(
        self, conn: Connection, run_ids: Sequence[str], error: str, now: datetime
    ) -> None:
        """Triggers still waiting for runs that ended (canceled, timed out) end ``canceled``."""
        if not run_ids:
            return
        params = {"run_ids": list(run_ids), "end_error": error, "end_at": now}
        ended = conn.execute(_END_WAITS_OF_RUNS, params).all()
        for row in ended:
            self._announce_change(conn, _row(row))

    # -- reading ------------------------------------------------------------------------------

    def _waiting(self, conn: Connection, project_id: str, key: str) -> EventTriggerRow | None:
        found = conn.execute(
            sa.select(*t.event_triggers.c).where(
                _e.project_id == project_id, _e.event_key == key, _e.status == _WAITING
            )
        ).first()
        return None if found is None else _row(found)

    def _newest(self, conn: Connection, project_id: str, key: str) -> EventTriggerRow | None:
        found = conn.execute(
            sa.select(*t.event_triggers.c)
            .where(_e.project_id == project_id, _e.event_key == key)
            .order_by(_e.requested_at.desc(), _e.id.desc())
            .limit(1)
        ).first()
        return None if found is None else _row(found)

    def _by_id(self, conn: Connection, project_id: str, trigger_id: str) -> EventTriggerRow:
        [row] = self._by_ids(conn, project_id, [trigger_id])
        return row

    def _by_ids(
        self, conn: Connection, project_id: str, trigger_ids: Sequence[str]
    ) -> list[EventTriggerRow]:
        found = conn.execute(
            sa.select(*t.event_triggers.c).where(
                _e.project_id == project_id, _e.id.in_(list(trigger_ids))
            )
        ).all()
        by_id = {row.id: _row(row) for row in found}
        return [by_id[trigger_id] for trigger_id in trigger_ids if trigger_id in by_id]

    async def get_event_triggers(
        self, project_id: str, trigger_ids: Sequence[str]
    ) -> list[EventTriggerRow]:
        return await self.read(lambda conn: self._by_ids(conn, project_id, trigger_ids))

    async def get_event_trigger(self, project_id: str, key: str) -> EventTriggerRow | None:
        """The key's waiting trigger, else its newest one."""

        def work(conn: Connection) -> EventTriggerRow | None:
            return self._waiting(conn, project_id, key) or self._newest(conn, project_id, key)

        return await self.read(work)

    async def list_event_triggers(
        self, project_id: str, where: EventFilter, page: Page
    ) -> list[EventTriggerRow]:
        """Newest first, keyset on (requested_at, id)."""
        query = sa.select(*t.event_triggers.c).where(_e.project_id == project_id)
        if where.statuses:
            query = query.where(_e.status.in_(list(where.statuses)))
        if where.workflow_run_id is not None:
            query = query.where(_e.workflow_run_id == where.workflow_run_id)
        if where.source_type is not None:
            query = query.where(_e.source_type == where.source_type)
        if where.requested_at is not None:
            query = query.where(_e.requested_at == where.requested_at)
        if page.after is not None:
            requested, last_id = page.after
            query = query.where(
                sa.or_(
                    _e.requested_at < requested,
                    sa.and_(_e.requested_at == requested, _e.id < last_id),
                )
            )
        query = query.order_by(_e.requested_at.desc(), _e.id.desc()).limit(page.limit)
        return await self.read(lambda conn: [_row(row) for row in conn.execute(query).all()])

    async def event_stats(self, project_id: str) -> dict[str, Any]:
        """Counts per status, and the mean wait of received triggers in seconds (0.0 if none)."""
        by_status = sa.select(_e.status, sa.func.count()).where(_e.project_id == project_id)
        waited = sa.select(
            sa.func.avg(sa.cast(_e.received_at, sa.Float) - sa.cast(_e.requested_at, sa.Float))
        ).where(_e.project_id == project_id, _e.status == EventStatus.RECEIVED.value)

        def work(conn: Connection) -> dict[str, Any]:
            counts: dict[str, int] = {
                str(status): int(n) for status, n in conn.execute(by_status.group_by(_e.status))
            }
            mean_ms = conn.execute(waited).scalar()
            return {"counts": counts, "avg_wait_secs": float(mean_ms or 0) / 1000}

        return await self.read(work)

    async def purge_event_triggers(
        self, project_id: str, *, ended_before: datetime, dry_run: bool
    ) -> int:
        """Delete (or, ``dry_run``, count) the project's ended triggers that ended before
        ``ended_before``; waiting ones are never touched."""
        which = sa.and_(
            _e.project_id == project_id, _e.status != _WAITING, _e.ended_at < ended_before
        )
        if dry_run:
            count = sa.select(sa.func.count()).select_from(t.event_triggers).where(which)
            return await self.read(lambda conn: int(conn.execute(count).scalar() or 0))
        delete = t.event_triggers.delete().where(which)
        return await self.write(lambda conn: int(conn.execute(delete).rowcount))
