"""The worker loop: claim runs up to the concurrency, execute them, sleep until woken.

Woken by the notifier when runs are created and by its own tasks when a slot frees; a slow
safety re-scan (``poll_interval``) only covers signals that cannot arrive (another process on a
store without notifications, a lapsed lease).
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
from flowgate.store.base import Store

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
        self._stopping = False
        # Whether runs may be claimable beyond what the last claim took: it filled every free
        # slot, or could not be made (no slot free, an error). A freed slot wakes the loop only
        # then; a claim that took fewer than it asked for took everything there was, and new
        # runs wake the loop themselves.
        self._maybe_more = False
        notifier.on_work(self._wake.set)

    async def run(self) -> None:
        """Serve until cancelled; then wait for the runs in hand to reach their next commit."""
        log.info("worker.started", extra={"owner": self.owner, "concurrency": self._concurrency})
        try:
            while True:
                self._wake.clear()
                claimed = await self._claim_some()
                if claimed and self._maybe_more and len(self._active) < self._concurrency:
                    continue
                # The timeout first: a cancellation while it is computed must not leave an
                # un-awaited wait() coroutine behind.
                idle = await self._idle_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), idle)
        finally:
            await self._drain()

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
        free = self._concurrency - len(self._active)
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
            task = asyncio.create_task(self._executor.execute(run), name=f"run:{run['id']}")
            self._active.add(task)
            task.add_done_callback(self._task_done)
        return len(runs)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        if self._maybe_more:
            self._wake.set()

    async def _drain(self) -> None:
        for task in list(self._active):
            task.cancel()
        if self._active:
            await asyncio.gather(*self._active, return_exceptions=True)
