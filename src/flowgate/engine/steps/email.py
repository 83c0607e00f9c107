"""``email``: ``config: {action: send, to, subject, body: {html|text}}``, as action email.send."""

from __future__ import annotations

from typing import ClassVar

from flowgate.engine.actions import ACTIONS, load_actions
from flowgate.engine.steps import CheckContext, Problem, StepContext, register_step
from flowgate.types import JSON, JSONObject


@register_step("email")
class EmailStep:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = True

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict):
            return [Problem(["config"], "email steps need a config")]
        if config.get("action", "send") != "send":
            return [Problem(["config", "action"], "the only email action is send")]
        if "to" not in config:
            return [Problem(["config", "to"], "Required")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        load_actions()
        return await ACTIONS["email.send"].run(config if isinstance(config, dict) else {}, ctx)
