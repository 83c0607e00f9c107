"""The worker loop: claim runs up to the concurrency, execute them, sleep until woken.

Woken by the notifier when runs are created and by its own tasks when a slot frees; a slow
safety re-scan (``poll_interval``) only covers signals that cannot arrive (another process on a
store without notifications, a lapsed lease).

A run started in this process while a slot is free and nothing else is waiting to be claimed
is *adopted* instead (``reserve`` → insert it leased to ``owner`` → ``adopt``): it is written
already claimed, so it costs no claim statement and no wake-up of this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta

from flowgate import ids
from flowgate.clock import Clock
from flowgate.engine.executor import RunExecutor
from flowgate.engine.notifier import Notifier
from flowgate.statuses import RunStatus
from flowgate.store.base import RunRow, Store

log = logging.getLogger(__name__)


def worker_owner_id() -> str:
    """A name for this worker in lease columns: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{ids.new_id('wrk')[-8:]}"


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        executor: RunExecutor,
        concurrency: int,
        lease_secs: float,
        poll_interval: float,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._executor = executor
        self._concurrency = concurrency
        self._lease_secs = lease_secs
        self._poll_interval = poll_interval
        self.owner = owner or worker_owner_id()
        self._wake = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        # Slots promised to runs being inserted leased to this worker (``reserve``).
        self._reserved = 0
        self._serving = False
        # Whether runs may be claimable beyond what the last claim took: it filled every free
        # slot, or could not be made (no slot free, an error). A freed slot wakes the loop only
        # then; a claim that took fewer than it asked for took everything there was, and new
        # runs wake the loop themselves.
        self._maybe_more = False
        notifier.on_work(self._wake.set)

    async def run(self) -> None:
        """Serve until cancelled; then wait for the runs in hand to reach their next commit."""
        log.info("worker.started", extra={"owner": self.owner, "concurrency": self._concurrency})
        self._serving = True
        try:
            while True:
                self._wake.clear()
                claimed = await self._claim_some()
                if claimed and self._maybe_more and self.free_slots > 0:
                    continue
                idle = await self._idle_seconds()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation
                # that comes as the event is set, and the loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await self._wake.wait()
        finally:
            self._serving = False
            await self._drain()

    @property
    def free_slots(self) -> int:
        """Slots neither executing a run nor promised to one."""
        return self._concurrency - len(self._active) - self._reserved

    @property
    def can_adopt(self) -> bool:
        """Serving, a slot free, and no run known to wait for a claim (those go first): the
        last claim took less than it could, and no new work was announced since."""
        return (
            self._serving
            and not self._maybe_more
            and not self._wake.is_set()
            and self.free_slots > 0
        )

    def reserve(self) -> bool:
        """Promise a slot to a run about to be inserted already leased to this worker (False
        when it ``can_adopt`` no run). Kept with ``adopt`` or given back with ``release``."""
        if not self.can_adopt:
            return False
        self._reserved += 1
        return True

    def as_claimed(self, run: RunRow) -> RunRow:
        """``run`` as this worker's claim would leave it (the store's ``claim_runs``)."""
        now = self._clock.now()
        return RunRow(
            **{
                **run,
                "status": RunStatus.RUNNING.value,
                "lease_owner": self.owner,
                "lease_expires_at": now + timedelta(seconds=self._lease_secs),
                "lease_epoch": run["lease_epoch"] + 1,
                "started_at": run["started_at"] or now,
            }
        )

    def release(self, slots: int) -> None:
        """Give back slots promised by ``reserve`` (their runs were not inserted leased)."""
        self._reserved -= slots

    def adopt(self, run: RunRow) -> None:
        """Execute ``run``, committed leased to this worker, in the slot ``reserve`` promised."""
        self._reserved -= 1
        self._start(run)

    async def _idle_seconds(self) -> float:
        """Sleep until woken, the next durable timer, or the safety re-scan, whichever is first."""
        try:
            wake_at = await self._store.next_wake_at()
        except Exception:
            log.exception("worker.next_wake_failed", extra={"owner": self.owner})
            return self._poll_interval
        if wake_at is None:
            return self._poll_interval
        until_wake = (wake_at - self._clock.now()).total_seconds()
        return min(self._poll_interval, max(until_wake, 0.001))

    async def run_until_idle(self) -> None:
        """Claim and execute until nothing is claimable (for tests and one-shot use)."""
        while await self._claim_some() or self._active:
            if self._active:
                await asyncio.wait(set(self._active), return_when=asyncio.FIRST_COMPLETED)

    async def _claim_some(self) -> int:
        free = self.free_slots
        self._maybe_more = True
        if free <= 0:
            return 0
        now = self._clock.now()
        try:
            runs = await self._store.claim_runs(
                owner=self.owner,
                limit=free,
                now=now,
                lease_until=now + timedelta(seconds=self._lease_secs),
            )
        except Exception:
            log.exception("worker.claim_failed", extra={"owner": self.owner})
            return 0
        self._maybe_more = len(runs) == free
        for run in runs:
            self._start(run)
        return len(runs)

    def _start(self, run: RunRow) -> None:
        task = asyncio.create_task(self._executor.execute(run), name=f"run:{run['id']}")
        self._active.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        if self._maybe_more:
            self._wake.set()

    async def _drain(self) -> None:
        for task in list(self._active):
            task.cancel()
        if self._active:
            await asyncio.gather(*self._active, return_exceptions=True)
