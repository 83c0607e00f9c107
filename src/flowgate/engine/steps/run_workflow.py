"""``run_workflow``: start another workflow as a child run; ``wait: true`` waits durably for it.

The child is started with an idempotency key made of the parent run, step and attempt, so a
parent resumed after a crash finds its child again instead of starting a second one.
"""

from __future__ import annotations

from typing import ClassVar

from flowgate.engine.steps import (
    CheckContext,
    Problem,
    StepContext,
    StepFailure,
    StepWait,
    register_step,
)
from flowgate.statuses import TERMINAL_RUN_STATUSES
from flowgate.types import JSON, JSONObject

_ENDED = frozenset(status.value for status in TERMINAL_RUN_STATUSES)


@register_step("run_workflow")
class RunWorkflow:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = False

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("workflow"), str):
            return [Problem(["config", "workflow"], "run_workflow steps need config.workflow")]
        if "wait" in config and not isinstance(config["wait"], bool | str):
            return [Problem(["config", "wait"], "must be true or false")]
        return []

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        assert isinstance(config, dict)  # noqa: S101 - check() guarantees it
        if ctx.children is None:
            raise StepFailure("Child runs are not available in this process")
        child_id = ctx.state.get("childRunId") if isinstance(ctx.state, dict) else None
        if not isinstance(child_id, str):
            child = await ctx.children.start(
                parent=ctx.run_id,
                project_id=ctx.project_id,
                key=f"{ctx.run_id}:{ctx.step_id}:{ctx.attempt}",
                workflow=str(config["workflow"]),
                input=config.get("input") or {},
            )
            child_id = str(child["id"])
            if config.get("wait") not in (True, "true"):
                return {"runId": child_id, "status": child["status"]}
        found = await ctx.children.get(child_id)
        if found is not None and found["status"] in _ENDED:
            return _result(found)
        raise StepWait(until=None, state={"childRunId": child_id}, wait_for_run=child_id)


def _result(child: JSONObject) -> JSON:
    if child["status"] == "completed":
        return child["output"]
    error = child.get("error")
    reason = error.get("message") if isinstance(error, dict) else None
    raise StepFailure(f"Child run {child['id']} ended {child['status']}: {reason or 'no reason'}")
