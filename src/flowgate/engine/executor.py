"""Running one claimed run, step by step, committing each outcome before acting on it.

Consecutive pure steps (``transform``, ``fail``, skipped steps) are committed together: running
them again after a crash changes nothing outside the run. Any other step's outcome is committed
before the next step starts, so a finished step never runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from flowgate import errors, ids
from flowgate.clock import Clock
from flowgate.engine.catalog import WorkflowCatalog
from flowgate.engine.definition import CompiledWorkflow, StepDef
from flowgate.engine.functions import FunctionRegistry
from flowgate.engine.notifier import Notifier
from flowgate.engine.steps import StepContext, StepFailure, StepType
from flowgate.engine.templating import TemplateEngine
from flowgate.store.base import (
    Lease,
    RunProgress,
    RunRow,
    RunStatus,
    StepRunRow,
    StepStatus,
    Store,
)
from flowgate.types import JSON, JSONObject

log = logging.getLogger(__name__)
_DONE = (StepStatus.COMPLETED, StepStatus.SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    status: StepStatus
    output: JSON = None
    error: JSONObject | None = None


class LeaseLost(Exception):
    """Another worker owns the run now, or it was canceled: stop without writing."""


class RunExecutor:
    """Executes claimed runs. Shared by all worker tasks of a process."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        notifier: Notifier,
        catalog: WorkflowCatalog,
        templates: TemplateEngine,
        step_types: dict[str, StepType],
        functions: FunctionRegistry,
        lease_secs: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._catalog = catalog
        self._templates = templates
        self._step_types = step_types
        self._functions = functions
        self._lease_secs = lease_secs

    async def execute(self, run: RunRow) -> None:
        """Run ``run`` to its end or until its lease is lost; never raises but CancelledError."""
        lease = Lease(run_id=run["id"], owner=str(run["lease_owner"]), epoch=run["lease_epoch"])
        heartbeat = asyncio.create_task(self._heartbeat(lease), name=f"lease:{run['id']}")
        try:
            await self._execute(run, lease)
        except LeaseLost:
            log.info("run.lease_lost", extra={"run_id": run["id"]})
        except Exception:
            log.exception("run.crashed", extra={"run_id": run["id"]})
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self._lease_secs / 3)
            until = self._clock.now() + timedelta(seconds=self._lease_secs)
            if not await self._store.renew_lease(lease, lease_until=until):
                return

    async def _execute(self, run: RunRow, lease: Lease) -> None:
        workflow = await self._catalog.get(run["workflow_id"], run["workflow_version"])
        finished = await self._finished_steps(run)
        context = _template_context(run, finished)
        step_outputs = context["steps"]
        assert isinstance(step_outputs, dict)  # noqa: S101 - built just above
        progress = RunProgress()
        last_output: JSON = None
        for position, step in enumerate(workflow.steps):
            if step.id in finished:
                last_output = finished[step.id]["output"]
                continue
            started = self._clock.now()
            outcome = await self._run_step(run, step, context)
            progress.steps.append(
                _step_row(run, step, position, outcome, started, self._clock.now())
            )
            if outcome.status == StepStatus.COMPLETED:
                step_outputs[step.id] = {"output": outcome.output, "status": "completed"}
                last_output = outcome.output
            if outcome.status == StepStatus.FAILED and not step.continue_on_error:
                return await self._finish(run, lease, progress, failed_step=(step, outcome))
            if not self._is_pure(step, outcome):
                await self._flush(lease, progress)
                progress = RunProgress()
        await self._complete(run, lease, progress, workflow, context, last_output)

    async def _finished_steps(self, run: RunRow) -> dict[str, StepRunRow]:
        """Steps that already completed, for a run taken over after a crash or lease loss."""
        if run["lease_epoch"] <= 1:
            return {}
        rows = await self._store.list_step_runs(run["id"])
        return {row["step_id"]: row for row in rows if row["status"] in _DONE}

    def _is_pure(self, step: StepDef, outcome: StepOutcome) -> bool:
        return outcome.status == StepStatus.SKIPPED or self._step_types[step.type].pure

    async def _run_step(self, run: RunRow, step: StepDef, context: JSONObject) -> StepOutcome:
        try:
            if step.condition is not None and not self._templates.condition(
                step.condition, context
            ):
                return StepOutcome(status=StepStatus.SKIPPED)
            config = self._templates.render(step.config, context)
        except errors.TemplateError as exc:
            message = f"Step {step.id!r}: {exc.message}"
            return StepOutcome(
                status=StepStatus.FAILED, error=_error("TEMPLATE_ERROR", message, step)
            )
        step_context = StepContext(
            run_id=run["id"],
            step_id=step.id,
            attempt=1,
            project_id=run["project_id"],
            env=run["env"],
            connection=None,
            functions=self._functions,
            idempotency_key=f"{run['id']}:{step.id}",
        )
        try:
            output = await self._step_types[step.type].execute(config, step_context)
            return StepOutcome(status=StepStatus.COMPLETED, output=_as_json(output))
        except StepFailure as exc:
            return StepOutcome(status=StepStatus.FAILED, error=_error(exc.code, exc.message, step))
        except Exception as exc:
            log.warning(
                "step.failed", extra={"run_id": run["id"], "step_id": step.id}, exc_info=True
            )
            message = f"{type(exc).__name__}: {exc}"
            return StepOutcome(status=StepStatus.FAILED, error=_error("STEP_FAILED", message, step))

    async def _flush(self, lease: Lease, progress: RunProgress) -> None:
        if not await self._store.save_progress(lease, progress):
            raise LeaseLost

    async def _complete(
        self,
        run: RunRow,
        lease: Lease,
        progress: RunProgress,
        workflow: CompiledWorkflow,
        context: JSONObject,
        last_output: JSON,
    ) -> None:
        output = last_output
        if workflow.has_output:
            try:
                output = self._templates.render(workflow.output, context)
            except errors.TemplateError as exc:
                error: JSONObject = {
                    "code": "TEMPLATE_ERROR",
                    "message": f"output: {exc.message}",
                    "stepId": None,
                }
                return await self._end(run, lease, progress, RunStatus.FAILED, error=error)
        await self._end(run, lease, progress, RunStatus.COMPLETED, output=output)

    async def _finish(
        self,
        run: RunRow,
        lease: Lease,
        progress: RunProgress,
        *,
        failed_step: tuple[StepDef, StepOutcome],
    ) -> None:
        step, outcome = failed_step
        error = outcome.error or _error("STEP_FAILED", "Step failed", step)
        await self._end(run, lease, progress, RunStatus.FAILED, error=error)

    async def _end(
        self,
        run: RunRow,
        lease: Lease,
        progress: RunProgress,
        status: RunStatus,
        *,
        output: JSON = None,
        error: JSONObject | None = None,
    ) -> None:
        progress.run_changes = {
            "status": status.value,
            "output": output,
            "error": error,
            "completed_at": self._clock.now(),
        }
        await self._flush(lease, progress)
        self._notifier.run_finished(run["id"])
        log.info("run.finished", extra={"run_id": run["id"], "status": status.value})


def _template_context(run: RunRow, finished: dict[str, StepRunRow]) -> JSONObject:
    steps: JSONObject = {
        step_id: {"output": row["output"], "status": row["status"]}
        for step_id, row in finished.items()
    }
    return {
        "input": run["input"],
        "env": dict(run["env"]),
        "run": {"id": run["id"], "workflowId": run["workflow_id"]},
        "steps": steps,
    }


def _error(code: str, message: str, step: StepDef) -> JSONObject:
    return {"code": code, "message": message, "stepId": step.id}


def _as_json(value: object) -> JSON:
    """Step outputs must be JSON; round-trip through orjson to be sure (and to copy)."""
    try:
        return orjson.loads(orjson.dumps(value))  # type: ignore[no-any-return]
    except TypeError as exc:
        raise StepFailure(f"The step returned a value that is not JSON: {exc}") from exc


def _step_row(
    run: RunRow,
    step: StepDef,
    position: int,
    outcome: StepOutcome,
    started: datetime,
    completed: datetime,
) -> StepRunRow:
    return StepRunRow(
        id=ids.new_id("stp"),
        run_id=run["id"],
        step_id=step.id,
        position=position,
        attempt=1,
        status=outcome.status.value,
        output=outcome.output,
        error=outcome.error,
        started_at=None if outcome.status == StepStatus.SKIPPED else started,
        completed_at=completed,
    )
