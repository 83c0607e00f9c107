"""Per-key rate limits in two categories (DESIGN §3): *execute* and *read*.

Fixed one-minute windows counted in process memory: exact "N requests per minute" semantics and
O(1) per request. With several API processes each counts its own share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from flowgate import errors
from flowgate.clock import Clock, to_millis


class Category(StrEnum):
    EXECUTE = "execute"
    READ = "read"


@dataclass
class RateLimiter:
    clock: Clock
    execute_limit: int
    read_limit: int
    _window: int = -1
    _counts: dict[tuple[str, Category], int] = field(default_factory=dict)

    def limit_for(self, category: Category, key_limit: int | None) -> int:
        if category == Category.EXECUTE:
            return key_limit or self.execute_limit
        return max(self.read_limit, key_limit or 0)

    def hit(self, key_id: str, category: Category, key_limit: int | None) -> None:
        """Count one request; raises RateLimited when the key's window is used up."""
        now_ms = to_millis(self.clock.now())
        window, into = divmod(now_ms, 60_000)
        if window != self._window:
            self._window = window
            self._counts.clear()
        limit = self.limit_for(category, key_limit)
        count = self._counts.get((key_id, category), 0) + 1
        if count > limit:
            reset = max(1, -(-(60_000 - into) // 1000))
            raise errors.RateLimited(limit=limit, retry_after=reset, reset=reset)
        self._counts[(key_id, category)] = count
