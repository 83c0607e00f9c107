"""Due times of schedules (engine/cron.py) with fixed datetimes: DST in Europe/Berlin,
6-field expressions, catch-up after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowgate.engine import cron

BERLIN = ZoneInfo("Europe/Berlin")
GRACE = timedelta(seconds=60)


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _due_times(schedule: cron.Schedule, start: datetime, count: int) -> list[datetime]:
    times, at = [], start
    for _ in range(count):
        at = cron.next_after(schedule, at)
        times.append(at)
    return times


def test_next_after_daily_in_berlin_is_computed_in_the_zone() -> None:
    schedule = cron.parse("0 9 * * *", "Europe/Berlin")

    assert cron.next_after(schedule, _utc(2026, 1, 15, 12)) == _utc(2026, 1, 16, 8)
    assert cron.next_after(schedule, _utc(2026, 7, 15, 12)) == _utc(2026, 7, 16, 7)


def test_next_after_spring_forward_runs_a_time_in_the_gap_once_an_hour_later() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist that day.
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")

    times = _due_times(schedule, _utc(2026, 3, 28, 12), 3)

    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times] == [
        "03-29 03:30 CEST",
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]


def test_next_after_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")

    times = _due_times(schedule, _utc(2026, 10, 24, 12), 3)

    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times] == [
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
        "10-27 02:30 CET",
    ]


def test_next_after_every_second_across_spring_forward_has_no_gap_and_no_repeat() -> None:
    schedule = cron.parse("* * * * * *", "Europe/Berlin")

    times = _due_times(schedule, _utc(2026, 3, 29, 0, 59, 58), 3)

    assert times == [_utc(2026, 3, 29, 0, 59, 59), _utc(2026, 3, 29, 1), _utc(2026, 3, 29, 1, 0, 1)]


def test_next_after_every_second_pauses_through_the_repeated_hour() -> None:
    schedule = cron.parse("* * * * * *", "Europe/Berlin")

    times = _due_times(schedule, _utc(2026, 10, 25, 0, 59, 58), 3)

    # 02:59:59 CEST, then the repeated 02:00-02:59 CET is skipped: 03:00:00 CET.
    assert times == [
        _utc(2026, 10, 25, 0, 59, 59),
        _utc(2026, 10, 25, 2),
        _utc(2026, 10, 25, 2, 0, 1),
    ]


def test_parse_six_fields_reads_the_first_as_seconds() -> None:
    schedule = cron.parse("15 0 12 * * *")

    assert cron.next_after(schedule, _utc(2026, 5, 1)) == _utc(2026, 5, 1, 12, 0, 15)


@pytest.mark.parametrize(
    "expression", ["* * * *", "* * * * * * *", "61 * * * *", "* * 32 * *", "a b c d e", ""]
)
def test_parse_bad_expression_raises(expression: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", " UTC"])
def test_parse_bad_timezone_raises(zone: str) -> None:
    with pytest.raises(cron.CronError, match="IANA"):
        cron.parse("* * * * *", zone)


def test_plan_latest_after_downtime_fires_only_the_latest_missed_time() -> None:
    schedule = cron.parse("0 * * * *")

    plan = cron.plan(
        schedule,
        due=_utc(2026, 5, 1, 3),
        now=_utc(2026, 5, 1, 7, 20),
        catch_up="latest",
        grace=GRACE,
    )

    assert plan == cron.Plan(fire=_utc(2026, 5, 1, 7), next_run_at=_utc(2026, 5, 1, 8))


def test_plan_none_after_downtime_fires_nothing_and_advances() -> None:
    schedule = cron.parse("0 * * * *")

    plan = cron.plan(
        schedule, due=_utc(2026, 5, 1, 3), now=_utc(2026, 5, 1, 7, 20), catch_up="none", grace=GRACE
    )

    assert plan == cron.Plan(fire=None, next_run_at=_utc(2026, 5, 1, 8))


def test_plan_none_a_little_late_still_fires() -> None:
    schedule = cron.parse("0 * * * *")

    plan = cron.plan(
        schedule,
        due=_utc(2026, 5, 1, 7),
        now=_utc(2026, 5, 1, 7, 0, 2),
        catch_up="none",
        grace=GRACE,
    )

    assert plan == cron.Plan(fire=_utc(2026, 5, 1, 7), next_run_at=_utc(2026, 5, 1, 8))


def test_plan_latest_missed_across_spring_forward_fires_the_shifted_time_once() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    # Down from before the gap until 04:00 CEST: the day's 02:30 (shown at 03:30 CEST) fires.
    plan = cron.plan(
        schedule,
        due=_utc(2026, 3, 29, 1, 30),
        now=_utc(2026, 3, 29, 2),
        catch_up="latest",
        grace=GRACE,
    )

    assert plan == cron.Plan(fire=_utc(2026, 3, 29, 1, 30), next_run_at=_utc(2026, 3, 30, 0, 30))


def test_plan_on_time_during_the_repeated_hour_does_not_fire_again() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    # The scheduler fired 02:30 CEST and advanced; at 02:30 CET the next due time is tomorrow.
    after_first = cron.next_after(schedule, _utc(2026, 10, 25, 0, 30))

    assert after_first == _utc(2026, 10, 26, 1, 30)
    assert cron.latest_at_or_before(schedule, _utc(2026, 10, 25, 1, 30)) == _utc(
        2026, 10, 25, 0, 30
    )


def test_parse_expression_that_never_comes_due_is_refused() -> None:
    with pytest.raises(cron.CronError, match="never comes due"):
        cron.parse("0 0 31 2 *")
