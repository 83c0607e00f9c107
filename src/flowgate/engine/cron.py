"""Schedules in pure functions: parse a cron expression and a time zone, find due times.

Cron fields are matched against the wall clock of the schedule's IANA time zone; every instant
that leaves here is aware UTC. Daylight-saving changes are decided in one place,
``_instant``:

- a wall time that does not exist (the spring-forward gap) runs once, at the instant it would
  have been had the clock not jumped: a daily ``30 2 * * *`` in ``Europe/Berlin`` runs at 03:30
  CEST on that day;
- a wall time that happens twice (the fall-back repeat) runs once, at its first occurrence: the
  daily 02:30 runs at 02:30 CEST, not again at 02:30 CET. Schedules that match every hour
  therefore pause during the repeated hour rather than running through it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

CatchUp = Literal["latest", "none"]
CATCH_UP_MODES: tuple[CatchUp, ...] = ("latest", "none")
#: How many wall times one search may look at before giving up (a repeated hour of a
#: per-second schedule is 3,600).
_MAX_STEPS = 100_000


class CronError(ValueError):
    """The expression or the time zone cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A checked cron expression (croniter's order: seconds, if any, last) in a zone."""

    expression: str
    zone: ZoneInfo


def parse(cron: str, timezone: str = "UTC") -> Schedule:
    """Raises CronError for anything but 5 fields, or 6 with the seconds first, or a zone
    that is not an IANA name."""
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise CronError("must have 5 fields, or 6 with seconds first")
    # croniter reads a sixth field as seconds at the *end*; DESIGN and Quartz-style users put
    # seconds first, so move them.
    expression = " ".join([*fields[1:], fields[0]] if len(fields) == 6 else fields)
    try:
        croniter(expression)
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronError("not a valid cron expression") from exc
    try:  # valid but never due (February 31st): refuse it now, not when it is scheduled
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterError as exc:
        raise CronError("never comes due") from exc
    return Schedule(expression=expression, zone=zone(timezone))


def zone(name: str) -> ZoneInfo:
    """Raises CronError for a name that is not an IANA time zone."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise CronError("not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError("not an IANA time zone name") from exc


def _instant(schedule: Schedule, wall: datetime) -> datetime:
    """The UTC instant of a naive wall time: fold 0, i.e. the first occurrence of a repeated
    time and, for a time in a gap, the offset from before the jump (shifted by the gap)."""
    return wall.replace(tzinfo=schedule.zone, fold=0).astimezone(UTC)


def _wall(schedule: Schedule, instant: datetime) -> datetime:
    return instant.astimezone(schedule.zone).replace(tzinfo=None, fold=0)


def next_after(schedule: Schedule, after: datetime) -> datetime:
    """The first due time strictly after ``after`` (aware). Raises CronError if none is near."""
    walls = croniter(schedule.expression, _wall(schedule, after))
    for _ in range(_MAX_STEPS):
        instant = _instant(schedule, walls.get_next(datetime))
        # During a repeated hour, wall times after ``after``'s are still before it in UTC.
        if instant > after:
            return instant
    raise CronError("no due time found")


def latest_at_or_before(schedule: Schedule, now: datetime) -> datetime:
    """The last due time at or before ``now``. Raises CronError if none is near."""
    walls = croniter(schedule.expression, _wall(schedule, now) + timedelta(seconds=1))
    for _ in range(_MAX_STEPS):
        instant = _instant(schedule, walls.get_prev(datetime))
        # A wall time in a gap maps to after the gap, possibly after ``now``.
        if instant <= now:
            return instant
    raise CronError("no due time found")


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to do with a trigger whose ``next_run_at`` has come."""

    #: The due time to start a run for, or None to only advance.
    fire: datetime | None
    next_run_at: datetime


def plan(
    schedule: Schedule,
    *,
    due: datetime,
    now: datetime,
    catch_up: CatchUp,
    grace: timedelta,
) -> Plan:
    """Decide for a trigger due at ``due`` (≤ ``now``). Only one due time ever fires, however
    many were missed: with ``latest`` the last one at or before ``now``; with ``none`` only a
    due time that is not yet ``grace`` old (a scheduler a little late has missed nothing)."""
    latest = max(latest_at_or_before(schedule, now), due)
    following = next_after(schedule, max(latest, now))
    if catch_up == "none" and now - latest > grace:
        return Plan(fire=None, next_run_at=following)
    return Plan(fire=latest, next_run_at=following)
