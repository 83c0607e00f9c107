"""``transform``: the rendered ``config.mapping`` is the step's output."""

from __future__ import annotations

from typing import ClassVar

from flowgate.engine.steps import CheckContext, Problem, StepContext, register_step
from flowgate.types import JSON, JSONObject


@register_step("transform")
class Transform:
    pure: ClassVar[bool] = True
    calls_out: ClassVar[bool] = False

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict) or "mapping" not in config:
            return [Problem(["config", "mapping"], "transform steps need config.mapping")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        assert isinstance(config, dict)  # noqa: S101 - check() guarantees it
        return config["mapping"]
