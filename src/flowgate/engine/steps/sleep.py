"""``sleep``: wait durably for ``seconds`` or ``until`` a timestamp; the run holds no worker."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from flowgate import clock
from flowgate.engine.steps import (
    CheckContext,
    Problem,
    StepContext,
    StepFailure,
    StepWait,
    register_step,
)
from flowgate.types import JSON, JSONObject

MAX_SLEEP = timedelta(days=366)


def parse_until(value: object) -> datetime | None:
    """An ISO-8601 timestamp with a time zone (``Z`` allowed), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _valid_seconds(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return 0 <= value <= MAX_SLEEP.total_seconds()


def _templated(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


@register_step("sleep")
class Sleep:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = False

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict) or ("seconds" in config) == ("until" in config):
            return [Problem(["config"], "sleep steps need exactly one of seconds or until")]
        if "seconds" in config:
            if not (_templated(config["seconds"]) or _valid_seconds(config["seconds"])):
                return [
                    Problem(["config", "seconds"], "must be a number of seconds, 0 to 366 days")
                ]
        elif not _templated(config["until"]) and parse_until(config["until"]) is None:
            return [Problem(["config", "until"], "must be an ISO-8601 timestamp with a time zone")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        now = ctx.clock.now()
        wake = parse_until(ctx.state.get("wakeAt")) if isinstance(ctx.state, dict) else None
        if wake is None:
            wake = _wake_time(config, now)
        if wake > now:
            raise StepWait(until=wake, state={"wakeAt": clock.to_wire(wake)})
        return {"sleptUntil": clock.to_wire(wake)}


def _wake_time(config: JSON, now: datetime) -> datetime:
    settings = config if isinstance(config, dict) else {}
    if "until" in settings:
        until = parse_until(settings["until"])
        if until is None:
            raise StepFailure(f"until is not an ISO-8601 timestamp: {settings['until']!r}")
        return until
    seconds = settings.get("seconds")
    if isinstance(seconds, str):
        try:
            seconds = float(seconds)
        except ValueError:
            seconds = None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise StepFailure(f"seconds must be a non-negative number, not {seconds!r}")
    return now + min(timedelta(seconds=seconds), MAX_SLEEP)
