from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowgate import errors
from flowgate.clock import FrozenClock
from flowgate.service.ratelimit import Category, RateLimiter


def _limiter(clock: FrozenClock) -> RateLimiter:
    return RateLimiter(clock=clock, execute_limit=2, read_limit=5)


def test_rate_limiter_over_limit_raises_with_reset() -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 15, tzinfo=UTC))
    limiter = _limiter(clock)
    limiter.hit("k", Category.EXECUTE, None)
    limiter.hit("k", Category.EXECUTE, None)

    with pytest.raises(errors.RateLimited) as caught:
        limiter.hit("k", Category.EXECUTE, None)

    assert caught.value.message == "Rate limit exceeded. Limit: 2 requests per minute."
    assert caught.value.retry_after == 45


def test_rate_limiter_new_minute_starts_fresh() -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 59, tzinfo=UTC))
    limiter = _limiter(clock)
    limiter.hit("k", Category.EXECUTE, None)
    limiter.hit("k", Category.EXECUTE, None)
    clock.advance(seconds=1)

    limiter.hit("k", Category.EXECUTE, None)


def test_rate_limiter_used_up_execute_leaves_read_budget_whole() -> None:
    limiter = _limiter(FrozenClock())
    for _ in range(2):
        limiter.hit("a", Category.EXECUTE, None)

    for _ in range(5):  # merged counts would refuse the fourth
        limiter.hit("a", Category.READ, None)
    with pytest.raises(errors.RateLimited):
        limiter.hit("a", Category.READ, None)


def test_rate_limiter_used_up_read_leaves_execute_budget_whole() -> None:
    limiter = _limiter(FrozenClock())
    for _ in range(5):
        limiter.hit("a", Category.READ, None)

    for _ in range(2):  # merged counts would refuse the first
        limiter.hit("a", Category.EXECUTE, None)
    with pytest.raises(errors.RateLimited):
        limiter.hit("a", Category.EXECUTE, None)


def test_rate_limiter_used_up_key_leaves_other_key_budget_whole() -> None:
    limiter = _limiter(FrozenClock())
    for _ in range(2):
        limiter.hit("a", Category.EXECUTE, None)

    for _ in range(2):
        limiter.hit("b", Category.EXECUTE, None)
    with pytest.raises(errors.RateLimited):
        limiter.hit("b", Category.EXECUTE, None)


def test_rate_limiter_key_limit_overrides_execute_default() -> None:
    limiter = _limiter(FrozenClock())
    for _ in range(4):
        limiter.hit("a", Category.EXECUTE, 4)

    with pytest.raises(errors.RateLimited):
        limiter.hit("a", Category.EXECUTE, 4)


async def test_rate_limiter_acquire_without_shared_store_counts_in_memory() -> None:
    clock = FrozenClock(datetime(2024, 1, 1, 12, 0, 15, tzinfo=UTC))
    limiter = _limiter(clock)
    await limiter.acquire("k", Category.EXECUTE, None)
    limiter.hit("k", Category.EXECUTE, None)

    with pytest.raises(errors.RateLimited) as caught:
        await limiter.acquire("k", Category.EXECUTE, None)

    assert caught.value.retry_after == 45
