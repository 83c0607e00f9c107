"""``fail``: end the run as failed with ``config.message`` (and ``config.code``, default FAILED)."""

from __future__ import annotations

from typing import ClassVar

from flowgate.engine.steps import CheckContext, Problem, StepContext, StepFailure, register_step
from flowgate.types import JSON, JSONObject


@register_step("fail")
class Fail:
    pure: ClassVar[bool] = True
    calls_out: ClassVar[bool] = False

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config", {})
        if not isinstance(config, dict):
            return [Problem(["config"], "must be an object")]
        problems = []
        for name in ("message", "code"):
            if name in config and not isinstance(config[name], str):
                problems.append(Problem(["config", name], "must be a string"))
        return problems

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        settings = config if isinstance(config, dict) else {}
        message = settings.get("message") or "Failed by a fail step"
        code = settings.get("code") or "FAILED"
        raise StepFailure(str(message), code=str(code))
