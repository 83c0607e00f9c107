"""``action``: call the action named in the step's own ``action`` field."""

from __future__ import annotations

from typing import ClassVar

from flowgate.engine.actions import ACTIONS, load_actions
from flowgate.engine.steps import CheckContext, Problem, StepContext, StepFailure, register_step
from flowgate.types import JSON, JSONObject


@register_step("action")
class ActionStep:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = True

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        name = step.get("action")
        known = load_actions()
        if not isinstance(name, str) or name not in known:
            return [Problem(["action"], f"Unknown action {name!r} ({', '.join(sorted(known))})")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        action = ACTIONS.get(ctx.action or "")
        if action is None:
            raise StepFailure(f"Unknown action {ctx.action!r}")
        return await action.run(config if isinstance(config, dict) else {}, ctx)
