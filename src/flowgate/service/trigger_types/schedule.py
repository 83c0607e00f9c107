"""``schedule``: a cron expression in an IANA time zone starts runs with a fixed input.

The type checks the fields and keeps ``next_run_at`` (UTC) current; ``service/scheduler.py``
starts the runs when it comes.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from flowgate.engine import cron
from flowgate.engine.steps import Problem
from flowgate.service.core import Services
from flowgate.service.trigger_types import TriggerSpec, TriggerType, TriggerView, register_trigger
from flowgate.store.base import TriggerRow
from flowgate.types import JSONObject


def schedule_of(config: JSONObject) -> cron.Schedule:
    """The checked schedule of a stored trigger's config. Raises CronError."""
    expression, zone = config.get("cron"), config.get("timezone", "UTC")
    if not isinstance(expression, str) or not isinstance(zone, str):
        raise cron.CronError("cron and timezone must be strings")
    return cron.parse(expression, zone)


def catch_up_of(config: JSONObject) -> cron.CatchUp:
    return "none" if config.get("catchUp") == "none" else "latest"


def first_run_at(config: JSONObject, now: datetime) -> datetime:
    """The first due time after ``now``."""
    return cron.next_after(schedule_of(config), now)


@register_trigger("schedule")
class ScheduleTrigger(TriggerType):
    """``cron`` (required), ``timezone`` (default UTC), ``input`` (an object, default {}),
    ``catchUp`` (``latest``, the default, or ``none``)."""

    fields: ClassVar[frozenset[str]] = frozenset({"cron", "timezone", "input", "catchUp"})

    def check(self, spec: TriggerSpec) -> list[Problem]:
        config, problems = spec.config, []
        expression = config.get("cron")
        if not isinstance(expression, str):
            problems.append(Problem(["cron"], "Required: a cron expression string"))
        else:
            try:
                cron.parse(expression)
            except cron.CronError as exc:
                problems.append(Problem(["cron"], str(exc)))
        zone = config.get("timezone", "UTC")
        try:
            cron.zone(zone if isinstance(zone, str) else "")
        except cron.CronError as exc:
            problems.append(Problem(["timezone"], str(exc)))
        if not isinstance(config.get("input", {}), dict):
            problems.append(Problem(["input"], "must be an object"))
        if config.get("catchUp", "latest") not in cron.CATCH_UP_MODES:
            problems.append(Problem(["catchUp"], "must be one of: latest, none"))
        return problems

    def build(
        self, svc: Services, spec: TriggerSpec, row: TriggerRow, *, previous: TriggerRow | None
    ) -> TriggerView:
        # An unchanged schedule keeps its next due time (one not yet started stays due);
        # a new or changed one counts from now.
        unchanged = previous is not None and all(
            previous["config"].get(k) == spec.config.get(k) for k in ("cron", "timezone")
        )
        if not unchanged or row["next_run_at"] is None:
            row["next_run_at"] = first_run_at(spec.config, svc.clock.now())
        return TriggerView(row=row)
