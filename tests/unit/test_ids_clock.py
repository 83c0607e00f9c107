from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowgate import clock, ids


def test_new_id_has_prefix_and_sorts_by_time() -> None:
    first = ids.new_id("run", now_ms=1_000)
    second = ids.new_id("run", now_ms=2_000)

    assert first.startswith("run_")
    assert len(first) == len("run_") + 26
    assert first < second


def test_to_wire_renders_milliseconds_and_z() -> None:
    value = datetime(2024, 1, 15, 10, 0, 5, 123456, tzinfo=UTC)

    assert clock.to_wire(value) == "2024-01-15T10:00:05.123Z"


def test_millis_round_trip_is_exact() -> None:
    value = datetime(2024, 1, 15, 10, 0, 5, 123000, tzinfo=UTC)

    assert clock.from_millis(clock.to_millis(value)) == value


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        clock.to_millis(datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test
