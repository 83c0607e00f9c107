"""Rate counters shared through the database: the store's claim, and limiters that share it.

Two ``RateLimiter`` objects on one store stand for two API processes: they share nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from flowgate import errors
from flowgate.clock import FrozenClock
from flowgate.service.ratelimit import Category, RateLimiter
from flowgate.store import open_store
from flowgate.store.base import Store

MINUTE = 28_400_000


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = open_store(database_url)
    yield opened
    await opened.close()


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _limiter(store: Store, clock: FrozenClock, ticker: Ticker | None = None) -> RateLimiter:
    return RateLimiter(
        clock=clock,
        execute_limit=4,
        read_limit=6,
        shared=store,
        lease_secs=0.25,
        monotonic=ticker or Ticker(),
    )


async def test_claim_rate_grants_no_more_than_the_limit(store: Store) -> None:
    claims = [
        await store.claim_rate("k", "execute", minute=MINUTE, want=3, limit=5) for _ in range(3)
    ]

    assert claims == [(3, 3), (2, 5), (0, 5)]


async def test_claim_rate_keeps_windows_and_categories_apart(store: Store) -> None:
    await store.claim_rate("k", "execute", minute=MINUTE, want=5, limit=5)

    assert await store.claim_rate("k", "read", minute=MINUTE, want=1, limit=5) == (1, 1)
    assert await store.claim_rate("k", "execute", minute=MINUTE + 1, want=1, limit=5) == (1, 1)


async def test_prune_rate_counters_deletes_only_older_windows(store: Store) -> None:
    for minute in (MINUTE - 3, MINUTE - 2, MINUTE):
        await store.claim_rate("k", "execute", minute=minute, want=1, limit=5)

    deleted = await store.prune_rate_counters(before_minute=MINUTE - 2)

    assert deleted == 1
    assert await store.claim_rate("k", "execute", minute=MINUTE - 2, want=1, limit=5) == (1, 2)


async def test_shared_limiters_admit_n_spread_then_refuse_on_both(store: Store) -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 15, tzinfo=UTC))
    one, two = _limiter(store, clock), _limiter(store, clock)

    for limiter in (one, two, one, two):
        await limiter.acquire("k", Category.EXECUTE, None)

    for limiter in (one, two):
        with pytest.raises(errors.RateLimited) as caught:
            await limiter.acquire("k", Category.EXECUTE, None)
        assert caught.value.message == "Rate limit exceeded. Limit: 4 requests per minute."
        assert caught.value.retry_after == 45


async def test_shared_limiters_used_up_execute_leaves_read_budget_whole(store: Store) -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 15, tzinfo=UTC))
    one, two = _limiter(store, clock), _limiter(store, clock)
    for limiter in (one, two, one, two):
        await limiter.acquire("k", Category.EXECUTE, None)

    for limiter in (one, two, one, two, one, two):
        await limiter.acquire("k", Category.READ, None)
    with pytest.raises(errors.RateLimited):
        await two.acquire("k", Category.READ, None)


async def test_shared_limiter_new_minute_starts_fresh(store: Store) -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 59, tzinfo=UTC))
    one, two = _limiter(store, clock), _limiter(store, clock)
    for limiter in (one, two, one, two):
        await limiter.acquire("k", Category.EXECUTE, None)
    clock.advance(seconds=1)

    for limiter in (one, two, one, two):
        await limiter.acquire("k", Category.EXECUTE, None)


async def test_shared_limiter_busy_key_claims_ahead_within_its_lease(store: Store) -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 15, tzinfo=UTC))
    ticker = Ticker()
    busy = _limiter(store, clock, ticker)
    for _ in range(1_000):  # 1,000 requests/s: a claim covers about 250 (lease_secs 0.25)
        ticker.now += 0.001
        await busy.acquire("k", Category.EXECUTE, 100_000)
    await busy.settle()

    minute = int(clock.now().timestamp()) // 60
    _, counted = await store.claim_rate("k", "execute", minute=minute, want=0, limit=100_000)

    assert 1_000 < counted <= 1_000 + 2 * 251  # spent + its last two claims at most
