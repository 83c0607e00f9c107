"""Per-key rate limits in two categories (DESIGN §3): *execute* and *read*.

Fixed one-minute windows. On SQLite (one process) they are counted in process memory: exact
"N requests per minute" and O(1) per request.

On PostgreSQL every API process shares one budget per key, category and minute through the
``rate_counters`` table, whose ``count`` is what processes have *claimed*. A process claims an
allowance with one upsert that never lets ``count`` pass the limit, then spends it in memory, so
``acquire`` never admits more than N a minute across all processes. The allowance is what this
process used of that key in the last ``lease_secs`` (at most an eighth of what the window has
left), plus the request at hand: a quiet key claims one request at a time, which is exact, and a
busy key reaches the database about ``1 / lease_secs`` times a second whatever its rate. The price
of never admitting too many is that a process may refuse while another still holds unspent
allowance: at most its last two claims (it claims again in the background once half a grant is
left), each at most its pace over ``lease_secs`` and an eighth of what the window had left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flowgate import errors
from flowgate.clock import Clock, to_millis
from flowgate.store import base

log = logging.getLogger(__name__)
#: A claim takes at most this share of what the window has left, so one process's unspent
#: allowance can starve the others of little.
_LEASE_SHARE = 8
#: Counts of windows older than this many minutes are deleted (once a minute per process).
_KEEP_MINUTES = 2


class Category(StrEnum):
    EXECUTE = "execute"
    READ = "read"


@dataclass(slots=True)
class _Share:
    """One process's view of one key's category in one window of the shared counters."""

    minute: int
    allowance: int = 0  # claimed from the table, not yet spent
    known: int = 0  # the table's count at the last claim (every process's claims)
    used: int = 0  # spent since the last claim: sizes the next one
    claimed_at: float = float("-inf")
    refill_at: int = 0  # claim more in the background once the allowance falls below this
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    topping_up: bool = False


@dataclass
class RateLimiter:
    clock: Clock
    execute_limit: int
    read_limit: int
    shared: base.Store | None = None
    lease_secs: float = 0.25
    monotonic: Callable[[], float] = time.monotonic
    _window: int = -1
    _counts: dict[tuple[str, Category], int] = field(default_factory=dict)
    _shares: dict[tuple[str, Category], _Share] = field(default_factory=dict)
    _pruned: int = -1
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def limit_for(self, category: Category, key_limit: int | None) -> int:
        if category == Category.EXECUTE:
            return key_limit or self.execute_limit
        return max(self.read_limit, key_limit or 0)

    async def acquire(self, key_id: str, category: Category, key_limit: int | None) -> None:
        """Count one request; raises RateLimited when the key's window is used up."""
        if self.shared is None:
            self.hit(key_id, category, key_limit)
            return
        limit = self.limit_for(category, key_limit)
        into, share = self._share(key_id, category)
        if share.allowance == 0 and share.known < limit:
            async with share.lock:  # one claim at a time; the others then spend what it got
                if share.allowance == 0 and share.known < limit:
                    await self._claim(key_id, category, share, limit=limit, want=1)
        if share.allowance == 0:
            raise _limited(limit, into)
        share.allowance -= 1
        share.used += 1
        if share.allowance < share.refill_at:
            self._top_up_soon(key_id, category, share, limit)

    def hit(self, key_id: str, category: Category, key_limit: int | None) -> None:
        """Count one request in this process's memory (one process: SQLite); raises RateLimited
        when the window is used up."""
        limit = self.limit_for(category, key_limit)
        now_ms = to_millis(self.clock.now())
        window, into = divmod(now_ms, 60_000)
        if window != self._window:
            self._window = window
            self._counts.clear()
        count = self._counts.get((key_id, category), 0) + 1
        if count > limit:
            raise _limited(limit, into)
        self._counts[(key_id, category)] = count

    async def settle(self) -> None:
        """Wait for the claims running in the background."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def _share(self, key_id: str, category: Category) -> tuple[int, _Share]:
        """Milliseconds into the current window, and this key's share of it."""
        minute, into = divmod(to_millis(self.clock.now()), 60_000)
        if minute != self._window:
            self._window = minute
            self._shares = {k: s for k, s in self._shares.items() if s.minute >= minute - 1}
        share = self._shares.get((key_id, category))
        if share is None or share.minute != minute:
            fresh = _Share(minute=minute)
            if share is not None:  # the key's pace carries over to size the first claim
                fresh.used, fresh.claimed_at = share.used, share.claimed_at
            share = self._shares[(key_id, category)] = fresh
        return into, share

    async def _claim(
        self, key_id: str, category: Category, share: _Share, *, limit: int, want: int
    ) -> None:
        assert self.shared is not None  # noqa: S101 - only the shared path claims
        now = self.monotonic()
        pace = share.used / max(now - share.claimed_at, 1e-3)
        lease = min(int(pace * self.lease_secs), (limit - share.known) // _LEASE_SHARE)
        granted, count = await self.shared.claim_rate(
            key_id, category.value, minute=share.minute, want=want + max(lease, 0), limit=limit
        )
        share.allowance += granted
        # A busy key claims again while half its grant is left, so requests rarely wait on the
        # database; a grant of one (a quiet key) is spent before the next claim.
        share.refill_at = granted // 2
        share.known = count
        share.used = 0
        share.claimed_at = now
        if share.minute > self._pruned:
            self._pruned = share.minute
            self._in_background(self._prune(before_minute=share.minute - _KEEP_MINUTES))

    def _top_up_soon(self, key_id: str, category: Category, share: _Share, limit: int) -> None:
        """Claim more allowance in the background, before this process runs out."""
        if share.topping_up:
            return
        share.topping_up = True
        self._in_background(self._top_up(key_id, category, share, limit))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name="ratelimit.background")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prune(self, *, before_minute: int) -> None:
        """Delete old windows, off the request path: a failure only leaves rows for later."""
        assert self.shared is not None  # noqa: S101 - only the shared path prunes
        try:
            await self.shared.prune_rate_counters(before_minute=before_minute)
        except Exception as exc:
            log.warning("ratelimit.prune_failed", extra={"error": str(exc)})

    async def _top_up(self, key_id: str, category: Category, share: _Share, limit: int) -> None:
        try:
            async with share.lock:
                share.topping_up = False
                if share.allowance < share.refill_at:
                    await self._claim(key_id, category, share, limit=limit, want=0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a request's own claim will try again
            log.warning("ratelimit.top_up_failed", extra={"key_id": key_id, "error": str(exc)})


def _limited(limit: int, into: int) -> errors.RateLimited:
    reset = max(1, -(-(60_000 - into) // 1000))
    return errors.RateLimited(limit=limit, retry_after=reset, reset=reset)
