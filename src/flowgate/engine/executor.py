"""Running one claimed run, step by step, committing each outcome before acting on it.

Consecutive pure steps (``transform``, ``fail``, skipped steps) are committed together: running
them again after a crash changes nothing outside the run. Any other step's outcome is committed
before the next step starts, so a finished step never runs again.

A run leaves its worker whenever it has to wait — a ``sleep``, the delay before a retry — as
status ``waiting`` with ``wake_at``; any worker resumes it then at its first unfinished step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from flowgate import clock, errors, ids
from flowgate.clock import Clock
from flowgate.engine.catalog import WorkflowCatalog
from flowgate.engine.definition import CompiledWorkflow, StepDef
from flowgate.engine.functions import FunctionRegistry
from flowgate.engine.notifier import Notifier
from flowgate.engine.steps import (
    Children,
    Connections,
    HttpContext,
    SmtpDefaults,
    StepContext,
    StepFailure,
    StepType,
    StepWait,
)
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
_RETRYABLE = (StepStatus.FAILED, StepStatus.TIMED_OUT)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    status: StepStatus
    output: JSON = None
    error: JSONObject | None = None
    wait_until: datetime | None = None
    wait_for_run: str | None = None


@dataclass(slots=True, kw_only=True)
class _RunState:
    """What the executor knows while it works through one claimed run."""

    run: RunRow
    lease: Lease
    workflow: CompiledWorkflow
    context: JSONObject
    history: dict[str, StepRunRow]
    deadline: datetime | None
    progress: RunProgress = field(default_factory=RunProgress)
    last_output: JSON = None

    @property
    def step_outputs(self) -> JSONObject:
        outputs = self.context["steps"]
        assert isinstance(outputs, dict)  # noqa: S101 - built by _template_context
        return outputs


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
        http: HttpContext,
        lease_secs: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._catalog = catalog
        self._templates = templates
        self._step_types = step_types
        self._functions = functions
        self._http = http
        self.children: Children | None = None
        self.connections: Connections | None = None
        self.smtp = SmtpDefaults()
        self._lease_secs = lease_secs

    async def execute(self, run: RunRow) -> None:
        """Run ``run`` until it ends, waits, or loses its lease; never raises but CancelledError."""
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
        history = await self._history(run)
        state = _RunState(
            run=run,
            lease=lease,
            workflow=workflow,
            context=_template_context(run, history),
            history=history,
            deadline=_deadline(run, workflow),
        )
        for position, step in enumerate(workflow.steps):
            if self._already_done(state, step):
                continue
            if state.deadline is not None and self._clock.now() >= state.deadline:
                return await self._run_timed_out(state, step, position)
            if not await self._attempt(state, step, position):
                return
        await self._complete(state)

    async def _history(self, run: RunRow) -> dict[str, StepRunRow]:
        """Each step's latest attempt, for a run resumed after a wait, a crash or a lease loss."""
        if run["lease_epoch"] <= 1 and run["source"] != "rerun":
            return {}
        return {row["step_id"]: row for row in await self._store.list_step_runs(run["id"])}

    def _already_done(self, state: _RunState, step: StepDef) -> bool:
        row = state.history.get(step.id)
        if row is None:
            return False
        done = row["status"] in _DONE or (
            row["status"] in _RETRYABLE
            and step.continue_on_error
            and row["attempt"] >= step.retry.max_attempts
        )
        if done and row["status"] == StepStatus.COMPLETED:
            state.last_output = row["output"]
        return done

    async def _attempt(self, state: _RunState, step: StepDef, position: int) -> bool:
        """Run one attempt of ``step``; False when the run stopped here (ended or waits)."""
        previous = state.history.get(step.id)
        resuming = previous is not None and previous["status"] == StepStatus.WAITING
        attempt = 1 if previous is None else previous["attempt"] + (0 if resuming else 1)
        started = previous["started_at"] if resuming and previous else self._clock.now()
        outcome = await self._run_step(state, step, attempt, resume_state=_wait_state(previous))
        row = _step_row(state.run, step, position, attempt, outcome, started, self._clock.now())
        state.progress.steps.append(row)
        if outcome.status == StepStatus.WAITING:
            await self._park(state, outcome.wait_until, wait_for_run=outcome.wait_for_run)
            return False
        if outcome.status in _RETRYABLE and attempt < step.retry.max_attempts:
            await self._park(state, self._clock.now() + step.retry.delay_after(attempt))
            return False
        if outcome.status == StepStatus.COMPLETED:
            state.step_outputs[step.id] = {"output": outcome.output, "status": "completed"}
            state.last_output = outcome.output
        if outcome.status in _RETRYABLE and not step.continue_on_error:
            await self._end(state, RunStatus.FAILED, error=outcome.error)
            return False
        if not self._is_pure(step, outcome):
            await self._flush(state)
        return True

    def _is_pure(self, step: StepDef, outcome: StepOutcome) -> bool:
        return outcome.status == StepStatus.SKIPPED or self._step_types[step.type].pure

    async def _run_step(
        self, state: _RunState, step: StepDef, attempt: int, *, resume_state: JSON
    ) -> StepOutcome:
        try:
            if step.condition is not None and not self._templates.condition(
                step.condition, state.context
            ):
                return StepOutcome(status=StepStatus.SKIPPED)
            config = self._templates.render(step.config, state.context)
        except errors.TemplateError as exc:
            message = f"Step {step.id!r}: {exc.message}"
            return StepOutcome(
                status=StepStatus.FAILED, error=_error("TEMPLATE_ERROR", message, step)
            )
        step_context = StepContext(
            run_id=state.run["id"],
            step_id=step.id,
            attempt=attempt,
            project_id=state.run["project_id"],
            env=state.run["env"],
            connection=None,
            functions=self._functions,
            clock=self._clock,
            http=self._http,
            children=self.children,
            connections=self.connections,
            run_connection_id=state.run["connection_id"],
            step_connection_id=step.connection_id,
            action=step.action,
            smtp=self.smtp,
            idempotency_key=f"{state.run['id']}:{step.id}",
            state=resume_state,
        )
        return await self._call(state, step, config, step_context)

    async def _call(
        self, state: _RunState, step: StepDef, config: JSON, ctx: StepContext
    ) -> StepOutcome:
        limit = _time_limit(step, state.deadline, self._clock.now())
        try:
            async with asyncio.timeout(limit):
                output = await self._step_types[step.type].execute(config, ctx)
            return StepOutcome(status=StepStatus.COMPLETED, output=_as_json(output))
        except StepWait as wait:
            until = _earliest(wait.until, state.deadline)
            return StepOutcome(
                status=StepStatus.WAITING,
                output=wait.state,
                wait_until=until,
                wait_for_run=wait.wait_for_run,
            )
        except StepFailure as exc:
            return StepOutcome(status=StepStatus.FAILED, error=_error(exc.code, exc.message, step))
        except TimeoutError:
            message = f"Step {step.id!r} timed out after {limit:g} s"
            return StepOutcome(
                status=StepStatus.TIMED_OUT, error=_error("STEP_TIMEOUT", message, step)
            )
        except Exception as exc:
            log.warning(
                "step.failed", extra={"run_id": ctx.run_id, "step_id": step.id}, exc_info=True
            )
            message = f"{type(exc).__name__}: {exc}"
            return StepOutcome(status=StepStatus.FAILED, error=_error("STEP_FAILED", message, step))

    async def _flush(self, state: _RunState) -> None:
        progress, state.progress = state.progress, RunProgress()
        if not await self._store.save_progress(state.lease, progress):
            raise LeaseLost

    async def _park(
        self, state: _RunState, until: datetime | None, *, wait_for_run: str | None = None
    ) -> None:
        """Commit what is done and leave the run ``waiting`` until ``until`` or woken."""
        state.progress.run_changes = {"status": RunStatus.WAITING.value, "wake_at": until}
        if wait_for_run is not None and until is None:
            state.progress.wait_for_run = wait_for_run
            state.progress.now = self._clock.now()
        await self._flush(state)
        log.info("run.waiting", extra={"run_id": state.run["id"], "until": clock.to_wire(until)})

    async def _run_timed_out(self, state: _RunState, step: StepDef, position: int) -> None:
        timeout = state.workflow.timeout_secs
        message = f"The run exceeded the workflow's timeoutSecs ({timeout:g} s)"
        outcome = StepOutcome(
            status=StepStatus.TIMED_OUT, error=_error("RUN_TIMEOUT", message, step)
        )
        now = self._clock.now()
        previous = state.history.get(step.id)
        attempt = previous["attempt"] if previous is not None else 1
        state.progress.steps.append(
            _step_row(state.run, step, position, attempt, outcome, now, now)
        )
        await self._end(state, RunStatus.TIMED_OUT, error=outcome.error)

    async def _complete(self, state: _RunState) -> None:
        output = state.last_output
        if state.workflow.has_output:
            try:
                output = self._templates.render(state.workflow.output, state.context)
            except errors.TemplateError as exc:
                error: JSONObject = {
                    "code": "TEMPLATE_ERROR",
                    "message": f"output: {exc.message}",
                    "stepId": None,
                }
                return await self._end(state, RunStatus.FAILED, error=error)
        await self._end(state, RunStatus.COMPLETED, output=output)

    async def _end(
        self,
        state: _RunState,
        status: RunStatus,
        *,
        output: JSON = None,
        error: JSONObject | None = None,
    ) -> None:
        state.progress.run_changes = {
            "status": status.value,
            "output": output,
            "error": error,
            "wake_at": None,
            "completed_at": self._clock.now(),
        }
        if state.run["parent_run_id"] is not None:
            state.progress.wake_run = state.run["parent_run_id"]
            state.progress.now = self._clock.now()
        await self._flush(state)
        self._notifier.run_finished(state.run["id"])
        limits = state.workflow.concurrency
        if limits is not None:
            promoted = await self._store.promote_queued(
                state.run["workflow_id"], limit=limits.limit, total_limit=limits.total_limit
            )
            if promoted:
                self._notifier.work_available()
        log.info("run.finished", extra={"run_id": state.run["id"], "status": status.value})


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return min(first, second)


def _deadline(run: RunRow, workflow: CompiledWorkflow) -> datetime | None:
    if workflow.timeout_secs is None or run["started_at"] is None:
        return None
    return run["started_at"] + timedelta(seconds=workflow.timeout_secs)


def _time_limit(step: StepDef, deadline: datetime | None, now: datetime) -> float | None:
    limits = [] if step.timeout_secs is None else [step.timeout_secs]
    if deadline is not None:
        limits.append(max((deadline - now).total_seconds(), 0.001))
    return min(limits) if limits else None


def _wait_state(previous: StepRunRow | None) -> JSON:
    if previous is None or previous["status"] != StepStatus.WAITING:
        return None
    return previous["output"]


def _template_context(run: RunRow, history: dict[str, StepRunRow]) -> JSONObject:
    steps: JSONObject = {
        step_id: {"output": row["output"], "status": row["status"]}
        for step_id, row in history.items()
        if row["status"] == StepStatus.COMPLETED
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
    attempt: int,
    outcome: StepOutcome,
    started: datetime | None,
    completed: datetime,
) -> StepRunRow:
    waiting = outcome.status == StepStatus.WAITING
    return StepRunRow(
        id=ids.new_id("stp"),
        run_id=run["id"],
        step_id=step.id,
        position=position,
        attempt=attempt,
        status=outcome.status.value,
        output=outcome.output,
        error=outcome.error,
        started_at=None if outcome.status == StepStatus.SKIPPED else started,
        completed_at=None if waiting else completed,
    )
