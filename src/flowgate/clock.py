"""Time. Everything inside flowgate is aware UTC; the wire shows ``2024-01-15T10:00:00.000Z``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class Clock:
    """The real clock. Injected everywhere so tests can use a :class:`FrozenClock`."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock(Clock):
    """A clock that only moves when told to."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


def check_aware(value: datetime) -> datetime:
    """Return ``value`` if it carries a time zone; naive datetimes are a bug."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime: {value!r}")
    return value


def to_wire(value: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and ``Z``."""
    if value is None:
        return None
    utc = check_aware(value).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(value: datetime) -> int:
    return (check_aware(value) - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
