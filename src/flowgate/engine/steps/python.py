"""``python``: call a function the operator registered (never code sent over the API)."""

from __future__ import annotations

import asyncio
import inspect
from typing import ClassVar

from flowgate.engine.steps import CheckContext, Problem, StepContext, register_step
from flowgate.types import JSON, JSONObject


@register_step("python")
class Python:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = True

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("function"), str):
            return [Problem(["config", "function"], "python steps need config.function")]
        name = config["function"]
        if name not in ctx.functions:
            return [Problem(["config", "function"], f"No registered function named {name!r}")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        assert isinstance(config, dict)  # noqa: S101 - check() guarantees it
        function = ctx.functions.get(str(config["function"]))
        if inspect.iscoroutinefunction(function):
            result = await function(config, ctx)
        else:
            result = await asyncio.to_thread(function, config, ctx)
        return result  # type: ignore[no-any-return]
