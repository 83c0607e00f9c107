"""The scheduler: starts a run for each due time of each ``schedule`` trigger.

It runs in every process that runs workers (``serve`` with workers, ``flowgate worker``), so
schedules fire on PostgreSQL with API-only processes beside worker processes. Several
schedulers on one database need no leader: each due time is claimed with the run that answers
it, in the run's own transaction (``schedule_fires``' primary key), so whoever loses the race
gets the winner's run back and starts nothing.

It sleeps until the earliest ``next_run_at`` (one indexed read), is woken early when a trigger
is written in this process, and re-reads at least every ``poll_interval_secs`` for triggers
written by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from flowgate import errors
from flowgate.engine import cron
from flowgate.service.auth import Principal, acting_for_project
from flowgate.service.core import Services
from flowgate.service.runs import StartRun, start_run
from flowgate.service.trigger_types.schedule import catch_up_of, schedule_of
from flowgate.store.base import ScheduleFire, TriggerRow

log = logging.getLogger(__name__)
#: Due triggers handled per read; more are read at once after.
_BATCH = 100


class Scheduler:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._wake = asyncio.Event()
        svc.notifier.on_schedules(self._wake.set)

    async def run(self) -> None:
        """Fire due schedules until cancelled."""
        poll = self._svc.settings.poll_interval_secs
        while True:
            self._wake.clear()
            try:
                await self.fire_due()
                idle = await self._idle(poll)
            except asyncio.CancelledError:
                raise
            except Exception:
                # An outage or a bug: try again after the safety interval, not in a tight loop.
                log.exception("scheduler.failed")
                idle = poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self._wake.wait()

    async def _idle(self, poll: float) -> float:
        at = await self._svc.store.next_schedule_at()
        if at is None:
            return poll
        until = (at - self._svc.clock.now()).total_seconds()
        return min(poll, max(until, 0.001))

    async def fire_due(self) -> int:
        """Handle every trigger due now; the number of runs this process started."""
        started = 0
        while True:
            now = self._svc.clock.now()
            due = await self._svc.store.due_schedules(now=now, limit=_BATCH)
            for trigger in due:
                started += await self._handle(trigger, now)
            if len(due) < _BATCH:
                return started

    async def _handle(self, trigger: TriggerRow, now: datetime) -> int:
        """Start the run of one due trigger (unless it may not), then advance it."""
        due = trigger["next_run_at"]
        assert due is not None  # noqa: S101 - due_schedules only returns scheduled triggers
        try:
            plan = cron.plan(
                schedule_of(trigger["config"]),
                due=due,
                now=now,
                catch_up=catch_up_of(trigger["config"]),
                grace=timedelta(seconds=self._svc.settings.schedule_grace_secs),
            )
        except cron.CronError:
            # Checked when written, so only a stored row changed by hand gets here: stop it.
            log.exception("scheduler.bad_schedule", extra={"trigger_id": trigger["id"]})
            await self._svc.store.advance_schedule(
                trigger["project_id"], trigger["id"], due=due, next_run_at=None
            )
            return 0
        started = 0
        if plan.fire is not None and trigger["enabled"]:
            started = await self._start(trigger, plan.fire)
        await self._svc.store.advance_schedule(
            trigger["project_id"], trigger["id"], due=due, next_run_at=plan.next_run_at
        )
        return started

    async def _start(self, trigger: TriggerRow, due_at: datetime) -> int:
        """1 if this process started the due time's run; 0 if another had, or it may not run
        (a paused or archived workflow, an input its schema refuses, the quota used)."""
        input_ = trigger["config"].get("input", {})
        command = StartRun(
            workflow=trigger["workflow_id"],
            input=input_,
            source="schedule",
            fire=ScheduleFire(trigger_id=trigger["id"], due_at=due_at),
        )
        extra = {"trigger_id": trigger["id"], "due_at": due_at.isoformat()}
        try:
            started = await start_run(
                self._svc, await _principal(self._svc, trigger["project_id"]), command
            )
        except errors.InvalidStatus as exc:  # paused or archived: expected, once per due time
            log.info("scheduler.not_started", extra={**extra, "reason": exc.message})
            return 0
        except errors.FlowgateError as exc:
            log.warning("scheduler.not_started", extra={**extra, "reason": exc.message})
            return 0
        if started.replayed:
            return 0
        log.info("scheduler.started", extra={**extra, "run_id": started.run["id"]})
        return 1


async def _principal(svc: Services, project_id: str) -> Principal:
    """The trigger's project acting for itself: its quota and concurrency limits apply."""
    return await acting_for_project(
        svc, project_id, key_id="schedule", scopes=frozenset({"workflows:execute"})
    )
