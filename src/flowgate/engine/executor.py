"""Running one claimed run, step by step, committing each outcome before acting on it.

Consecutive pure steps (``transform``, ``fail``, skipped steps) are committed together: running
them again after a crash changes nothing outside the run. Any other step's outcome is committed
before the next step starts, so a finished step never runs again. A step that calls out
(``http``, ``action``, ``email``, ``python``) commits its attempt as ``running`` before the call,
in the same transaction as the previous step's outcome; the next owner of a run whose worker died
mid-call sees that attempt and records it ``WORKER_LOST`` before trying again.

A run leaves its worker whenever it has to wait — a ``sleep``, the delay before a retry — as
status ``waiting`` with ``wake_at``; any worker resumes it then at its first unfinished step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from flowgate import clock, errors, ids, jsonvalue, logs
from flowgate.clock import Clock
from flowgate.engine import metrics
from flowgate.engine.catalog import WorkflowCatalog
from flowgate.engine.definition import CompiledWorkflow, StepDef
from flowgate.engine.functions import FunctionRegistry
from flowgate.engine.notifier import Notifier
from flowgate.engine.redact import Redactor
from flowgate.engine.steps import (
    Children,
    Connections,
    ConnectionView,
    EventWait,
    HttpContext,
    SmtpDefaults,
    StepContext,
    StepFailure,
    StepType,
    StepWait,
)
from flowgate.engine.templating import TemplateEngine
from flowgate.statuses import (
    DONE_STEP_STATUSES,
    IN_FLIGHT_STEP_STATUSES,
    RETRYABLE_STEP_STATUSES,
)
from flowgate.store.base import (
    EventKeyTaken,
    EventTriggerRow,
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
#: Executions of one run that may raise something other than a step's own failure before the
#: run ends ``failed`` with ``RUN_CRASHED`` instead of being claimed again forever.
MAX_CRASHES = 3
WORKER_LOST_MESSAGE = "The worker running this attempt was lost before it finished; retried"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    status: StepStatus
    output: JSON = None
    error: JSONObject | None = None
    wait_until: datetime | None = None
    wait_for_run: str | None = None
    #: Event triggers the waiting step opens (``wait_for_event``).
    events: tuple[EventWait, ...] = ()


@dataclass(slots=True, kw_only=True)
class _RunState:
    """What the executor knows while it works through one claimed run."""

    run: RunRow
    lease: Lease
    workflow: CompiledWorkflow
    context: JSONObject
    history: dict[str, StepRunRow]
    #: Per step, the attempts lost with their worker (not counted by ``retry.maxAttempts``).
    lost: Counter[str]
    deadline: datetime | None
    redact: Redactor
    progress: RunProgress = field(default_factory=RunProgress)
    #: ``progress`` holds the outcome of a step that is not pure: it must be committed before
    #: the next step starts (see ``_attempt``).
    unsaved_effect: bool = False
    last_output: JSON = None

    @property
    def step_outputs(self) -> JSONObject:
        outputs = self.context["steps"]
        assert isinstance(outputs, dict)  # noqa: S101 - built by _template_context
        return outputs

    def counted(self, step: StepDef, attempt: int) -> int:
        return attempt - self.lost[step.id]


class LeaseLost(Exception):
    """Another worker owns the run now, or it was canceled: stop without writing."""


class _RecordingConnections:
    """The connections a step opens, their credentials added to the run's redactor."""

    def __init__(self, inner: Connections, redact: Redactor) -> None:
        self._inner = inner
        self._redact = redact

    async def get(
        self, project_id: str, connection_id: str, *, provider: str
    ) -> ConnectionView | None:
        found = await self._inner.get(project_id, connection_id, provider=provider)
        if found is not None:
            self._redact.add_json(found.credentials)
        return found


class _StoreEvents:
    """``steps.Events`` over the store: what a ``wait_for_event`` step reads and times out."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def triggers(self, project_id: str, trigger_ids: list[str]) -> list[JSONObject]:
        rows = await self._store.get_event_triggers(project_id, trigger_ids)
        return [_trigger_view(row) for row in rows]

    async def expire(self, project_id: str, trigger_ids: list[str]) -> list[JSONObject]:
        now = self._clock.now()
        rows = await self._store.expire_event_triggers(project_id, trigger_ids, now=now)
        return [_trigger_view(row) for row in rows]


def _trigger_view(row: EventTriggerRow) -> JSONObject:
    """What a step reads of its trigger."""
    return {
        "id": row["id"],
        "event_key": row["event_key"],
        "status": row["status"],
        "any_of": row["any_of"],
        "response_payload": row["response_payload"],
    }


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
        max_output_bytes: int = 1_048_576,
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
        self._events = _StoreEvents(store, clock)
        self._lease_secs = lease_secs
        self._max_output_bytes = max_output_bytes

    async def execute(self, run: RunRow) -> None:
        """Run ``run`` until it ends, waits, or loses its lease; never raises but CancelledError.

        Anything else that escapes (a bug, a corrupt row) is a crash: the run is released to be
        claimed again, and ends ``RUN_CRASHED`` after ``MAX_CRASHES``. A store outage is not a
        crash: the lease lapses and the run is taken over once the store is back.
        """
        with logs.bind_run(run["id"], run["workflow_id"]):
            await self._execute_logged(run)

    async def _execute_logged(self, run: RunRow) -> None:
        lease = Lease(run_id=run["id"], owner=str(run["lease_owner"]), epoch=run["lease_epoch"])
        redact = Redactor(_env_values(run))
        heartbeat = asyncio.create_task(self._heartbeat(lease), name=f"lease:{run['id']}")
        self._notifier.run_changed(run["id"])  # its claim (now running) is committed
        try:
            await self._execute(run, lease, redact)
        except LeaseLost:
            log.info("run.lease_lost", extra={"run_id": run["id"]})
        except Exception as exc:
            if self._store.is_outage(exc):
                log.warning("run.store_unavailable", extra={"run_id": run["id"]})
            else:
                await self._crashed(run, lease, exc, redact)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, lease: Lease) -> None:
        """Renew the lease every third of it until it is lost. A failed renewal (the store
        blinked) is tried again at the next beat: two more chances before the lease lapses."""
        while True:
            await asyncio.sleep(self._lease_secs / 3)
            until = self._clock.now() + timedelta(seconds=self._lease_secs)
            try:
                renewed = await self._store.renew_lease(lease, lease_until=until)
            except Exception:
                metrics.LEASE_RENEWALS.labels("error").inc()
                log.warning("run.lease_renewal_failed", extra={"run_id": lease.run_id})
                continue
            metrics.LEASE_RENEWALS.labels("renewed" if renewed else "lost").inc()
            if not renewed:
                return

    async def _crashed(self, run: RunRow, lease: Lease, exc: Exception, redact: Redactor) -> None:
        """Count the crash; the run is claimable again at once, or ends after MAX_CRASHES."""
        crashes = run["crash_count"] + 1
        message = redact(_describe(exc)).replace("\x00", "\ufffd")
        log.error(
            "run.crashed",
            extra={
                "run_id": run["id"],
                "crashes": crashes,
                "error": message,
                "traceback": redact("".join(traceback.format_exception(exc))),
            },
        )
        now = self._clock.now()
        progress = RunProgress()
        ends = crashes >= MAX_CRASHES
        if ends:
            error: JSONObject = {"code": "RUN_CRASHED", "message": message, "stepId": None}
            progress.run_changes = _ending(RunStatus.FAILED, None, error, now)
            progress.wake_run, progress.now = run["parent_run_id"], now
        else:
            progress.run_changes = {"lease_expires_at": now}
        progress.run_changes["crash_count"] = crashes
        try:
            saved = await self._store.save_progress(lease, progress)
        except Exception:
            log.exception("run.crash_not_recorded", extra={"run_id": run["id"]})
            return
        if saved and ends:
            metrics.RUNS_FINISHED.labels(run["workflow_id"], RunStatus.FAILED.value).inc()
            try:
                await self._after_end(run)
            except Exception:
                log.exception("run.after_end_failed", extra={"run_id": run["id"]})
        elif saved:
            self._notifier.work_available()

    async def _execute(self, run: RunRow, lease: Lease, redact: Redactor) -> None:
        workflow = await self._catalog.get(
            run["project_id"], run["workflow_id"], run["workflow_version"]
        )
        rows = await self._attempts(run)
        history = {row["step_id"]: row for row in rows}
        state = _RunState(
            run=run,
            lease=lease,
            workflow=workflow,
            context=_template_context(run, history),
            history=history,
            lost=Counter(row["step_id"] for row in rows if _code(row) == "WORKER_LOST"),
            deadline=_deadline(run, workflow),
            redact=redact,
        )
        for position, step in enumerate(workflow.steps):
            if self._already_done(state, step):
                continue
            if state.deadline is not None and self._clock.now() >= state.deadline:
                return await self._run_timed_out(state, step, position)
            if not await self._attempt(state, step, position):
                return
        await self._complete(state)

    async def _attempts(self, run: RunRow) -> list[StepRunRow]:
        """Every recorded attempt, for a run resumed after a wait, a crash or a lease loss."""
        if run["lease_epoch"] <= 1 and run["source"] != "rerun":
            return []
        return await self._store.list_step_runs(run["id"])

    def _already_done(self, state: _RunState, step: StepDef) -> bool:
        row = state.history.get(step.id)
        if row is None:
            return False
        done = row["status"] in DONE_STEP_STATUSES or (
            row["status"] in RETRYABLE_STEP_STATUSES
            and step.continue_on_error
            and state.counted(step, row["attempt"]) >= step.retry.max_attempts
        )
        if done and row["status"] == StepStatus.COMPLETED:
            state.last_output = row["output"]
        return done

    async def _attempt(self, state: _RunState, step: StepDef, position: int) -> bool:
        """Run one attempt of ``step``; False when the run stopped here (ended or waits).

        The outcome of a step that is not pure is committed before the next step starts: right
        away, or, when the next step calls out, together with that step's ``running`` row (one
        commit instead of two; nothing but pure evaluation happens in between).
        """
        if state.unsaved_effect and not self._step_types[step.type].calls_out:
            await self._flush(state)
        previous = state.history.get(step.id)
        if previous is not None and previous["status"] == StepStatus.RUNNING:
            previous = self._worker_lost(state, step, previous)
        resuming = previous is not None and previous["status"] == StepStatus.WAITING
        attempt = 1 if previous is None else previous["attempt"] + (0 if resuming else 1)
        started = (previous["started_at"] if resuming and previous else None) or self._clock.now()
        outcome = await self._run_step(
            state, step, position, attempt, started, resume_state=_wait_state(previous)
        )
        row = _step_row(state.run, step, position, attempt, outcome, started, self._clock.now())
        state.progress.steps.append(row)
        _observe_step(step, row)
        if outcome.status == StepStatus.WAITING:
            try:
                await self._park(
                    state,
                    outcome.wait_until,
                    wait_for_run=outcome.wait_for_run,
                    events=_event_rows(state.run, row, outcome.events),
                )
                return False
            except EventKeyTaken as exc:
                message = f"Event key {exc.key!r} already has a waiting trigger in this project"
                outcome = StepOutcome(
                    status=StepStatus.FAILED, error=_error("STEP_FAILED", message, step)
                )
                row = _step_row(
                    state.run, step, position, attempt, outcome, started, row["started_at"]
                )
                state.progress.steps[-1] = row
        if outcome.status == StepStatus.CANCELED and not step.continue_on_error:
            await self._end(state, RunStatus.FAILED, error=outcome.error)
            return False
        retryable = outcome.status in RETRYABLE_STEP_STATUSES
        if retryable and state.counted(step, attempt) < step.retry.max_attempts:
            delay = step.retry.delay_after(state.counted(step, attempt))
            await self._park(state, self._clock.now() + delay)
            return False
        if outcome.status == StepStatus.COMPLETED:
            state.step_outputs[step.id] = {"output": outcome.output, "status": "completed"}
            state.last_output = outcome.output
        if retryable and not step.continue_on_error:
            await self._end(state, RunStatus.FAILED, error=outcome.error)
            return False
        if not self._is_pure(step, outcome):
            state.unsaved_effect = True
        return True

    def _worker_lost(self, state: _RunState, step: StepDef, running: StepRunRow) -> StepRunRow:
        """The attempt a dead worker left ``running`` ends ``failed`` with ``WORKER_LOST``; it
        is committed with the next write and does not count against ``retry.maxAttempts``."""
        lost = StepRunRow(
            **{
                **running,
                "status": StepStatus.FAILED.value,
                "error": _error("WORKER_LOST", WORKER_LOST_MESSAGE, step),
                "completed_at": self._clock.now(),
            }
        )
        state.progress.steps.append(lost)
        state.lost[step.id] += 1
        metrics.WORKER_LOST.labels(step.type).inc()
        log.warning(
            "step.worker_lost",
            extra={"run_id": state.run["id"], "step_id": step.id, "attempt": lost["attempt"]},
        )
        return lost

    def _is_pure(self, step: StepDef, outcome: StepOutcome) -> bool:
        return outcome.status == StepStatus.SKIPPED or self._step_types[step.type].pure

    async def _run_step(
        self,
        state: _RunState,
        step: StepDef,
        position: int,
        attempt: int,
        started: datetime,
        *,
        resume_state: JSON,
    ) -> StepOutcome:
        env = _env_for(state.run, step.id)
        context = state.context if env is state.run["env"] else {**state.context, "env": env}
        try:
            if step.condition is not None and not self._templates.condition(
                step.condition, context
            ):
                return StepOutcome(status=StepStatus.SKIPPED)
            config = self._templates.render(step.config, context)
        except errors.TemplateError as exc:
            message = state.redact(f"Step {step.id!r}: {exc.message}")
            return StepOutcome(
                status=StepStatus.FAILED, error=_error("TEMPLATE_ERROR", message, step)
            )
        if self._step_types[step.type].calls_out:
            running = StepOutcome(status=StepStatus.RUNNING, output=resume_state)
            state.progress.steps.append(
                _step_row(state.run, step, position, attempt, running, started, None)
            )
            await self._flush(state)
        step_context = StepContext(
            run_id=state.run["id"],
            step_id=step.id,
            attempt=attempt,
            project_id=state.run["project_id"],
            env=env,
            connection=None,
            functions=self._functions,
            clock=self._clock,
            http=self._http,
            children=self.children,
            connections=(
                None
                if self.connections is None
                else _RecordingConnections(self.connections, state.redact)
            ),
            run_connection_id=state.run["connection_id"],
            step_connection_id=step.connection_id,
            action=step.action,
            smtp=self.smtp,
            idempotency_key=f"{state.run['id']}:{step.id}",
            state=resume_state,
            events=self._events,
        )
        return await self._call(state, step, config, step_context)

    async def _call(
        self, state: _RunState, step: StepDef, config: JSON, ctx: StepContext
    ) -> StepOutcome:
        limit = _time_limit(step, state.deadline, self._clock.now())
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                output = await self._step_types[step.type].execute(config, ctx)
            return StepOutcome(status=StepStatus.COMPLETED, output=self._bounded(output, step))
        except StepWait as wait:
            until = _earliest(wait.until, state.deadline)
            return StepOutcome(
                status=StepStatus.WAITING,
                output=wait.state,
                wait_until=until,
                wait_for_run=wait.wait_for_run,
                events=wait.events,
            )
        except StepFailure as exc:
            message = state.redact(exc.message)
            return StepOutcome(
                status=StepStatus(exc.status),
                output=_redacted(state.redact, exc.output),
                error=_error(exc.code, message, step),
            )
        except TimeoutError as exc:
            if not deadline.expired():  # the step's own timeout (a socket, say): its failure
                return self._failed(state, step, ctx, exc)
            message = f"Step {step.id!r} timed out after {limit:g} s"
            return StepOutcome(
                status=StepStatus.TIMED_OUT, error=_error("STEP_TIMEOUT", message, step)
            )
        except Exception as exc:
            return self._failed(state, step, ctx, exc)

    def _failed(
        self, state: _RunState, step: StepDef, ctx: StepContext, exc: Exception
    ) -> StepOutcome:
        """An unexpected exception from a step: its failure, logged without secrets."""
        message = state.redact(f"{type(exc).__name__}: {exc}")
        log.warning(
            "step.failed",
            extra={
                "run_id": ctx.run_id,
                "step_id": step.id,
                "error": message,
                "traceback": state.redact("".join(traceback.format_exception(exc))),
            },
        )
        return StepOutcome(status=StepStatus.FAILED, error=_error("STEP_FAILED", message, step))

    def _bounded(self, value: object, step: StepDef | None) -> JSON:
        """``value`` as JSON, refused (OUTPUT_TOO_LARGE) over ``FLOWGATE_MAX_OUTPUT_BYTES``."""
        try:
            encoded = jsonvalue.dumps(value)
        except TypeError as exc:
            raise StepFailure(f"The step returned a value that is not JSON: {exc}") from exc
        if len(encoded) > self._max_output_bytes:
            what = "Step output" if step is not None else "The run's output"
            raise StepFailure(
                f"{what} is {len(encoded):,} bytes of JSON, over the limit of "
                f"{self._max_output_bytes:,} (FLOWGATE_MAX_OUTPUT_BYTES)",
                code="OUTPUT_TOO_LARGE",
            )
        decoded: JSON = orjson.loads(encoded)
        # PostgreSQL cannot store U+0000 in JSON; a binary response body may well hold one.
        return _without_nul(decoded) if b"\\u0000" in encoded else decoded

    async def _flush(self, state: _RunState) -> None:
        progress, state.progress = state.progress, RunProgress()
        state.unsaved_effect = False
        try:
            saved = await self._store.save_progress(state.lease, progress)
        except EventKeyTaken:
            # Nothing was written: the steps go back to be committed with the step's failure.
            state.progress = RunProgress(steps=progress.steps)
            state.unsaved_effect = True
            raise
        if not saved:
            raise LeaseLost
        self._notifier.run_changed(state.lease.run_id)

    async def _park(
        self,
        state: _RunState,
        until: datetime | None,
        *,
        wait_for_run: str | None = None,
        events: list[EventTriggerRow] | None = None,
    ) -> None:
        """Commit what is done and leave the run ``waiting`` until ``until`` or woken; open
        ``events`` in the same transaction (raises EventKeyTaken, having written nothing)."""
        state.progress.run_changes = {"status": RunStatus.WAITING.value, "wake_at": until}
        if wait_for_run is not None and until is None:
            state.progress.wait_for_run = wait_for_run
            state.progress.now = self._clock.now()
        state.progress.event_waits = events or []
        await self._flush(state)
        if events:
            # An event buffered for one of the keys resolved it in that commit: resume soon.
            self._notifier.work_available()
            self._notifier.waits_opened()
        log.info("run.waiting", extra={"run_id": state.run["id"], "until": clock.to_wire(until)})

    async def _run_timed_out(self, state: _RunState, step: StepDef, position: int) -> None:
        timeout = state.workflow.timeout_secs
        message = f"The run exceeded the workflow's timeoutSecs ({timeout:g} s)"
        outcome = StepOutcome(
            status=StepStatus.TIMED_OUT, error=_error("RUN_TIMEOUT", message, step)
        )
        now = self._clock.now()
        previous = state.history.get(step.id)
        # A waiting (or lost) attempt ends here; after a failed one, this is the next attempt,
        # so the failure it had stays in the history.
        in_flight = previous is not None and previous["status"] in IN_FLIGHT_STEP_STATUSES
        attempt = 1 if previous is None else previous["attempt"] + (0 if in_flight else 1)
        state.progress.steps.append(
            _step_row(state.run, step, position, attempt, outcome, now, now)
        )
        await self._end(state, RunStatus.TIMED_OUT, error=outcome.error)

    async def _complete(self, state: _RunState) -> None:
        output = state.last_output
        try:
            if state.workflow.has_output:
                output = self._bounded(
                    self._templates.render(state.workflow.output, state.context), None
                )
        except errors.TemplateError as exc:
            error = _run_error("TEMPLATE_ERROR", state.redact(f"output: {exc.message}"))
            return await self._end(state, RunStatus.FAILED, error=error)
        except StepFailure as exc:
            return await self._end(state, RunStatus.FAILED, error=_run_error(exc.code, exc.message))
        await self._end(state, RunStatus.COMPLETED, output=output)

    async def _end(
        self,
        state: _RunState,
        status: RunStatus,
        *,
        output: JSON = None,
        error: JSONObject | None = None,
    ) -> None:
        now = self._clock.now()
        state.progress.run_changes = _ending(status, output, error, now)
        if state.run["parent_run_id"] is not None:
            state.progress.wake_run = state.run["parent_run_id"]
            state.progress.now = now
        await self._flush(state)
        metrics.RUNS_FINISHED.labels(state.run["workflow_id"], status.value).inc()
        await self._after_end(state.run, state.workflow)
        log.info("run.finished", extra={"run_id": state.run["id"], "status": status.value})

    async def _after_end(self, run: RunRow, workflow: CompiledWorkflow | None = None) -> None:
        """Tell waiters, and start queued runs the ended one made room for."""
        self._notifier.run_finished(run["id"])
        if workflow is None:
            try:
                workflow = await self._catalog.get(
                    run["project_id"], run["workflow_id"], run["workflow_version"]
                )
            except LookupError:
                return
        limits = workflow.concurrency
        if limits is not None:
            promoted = await self._store.promote_queued(
                run["project_id"],
                run["workflow_id"],
                limit=limits.limit,
                total_limit=limits.total_limit,
            )
            if promoted:
                self._notifier.work_available()


def _ending(
    status: RunStatus, output: JSON, error: JSONObject | None, now: datetime
) -> dict[str, object]:
    """The run columns of an ending: status, result, no timer."""
    return {
        "status": status.value,
        "output": output,
        "error": error,
        "wake_at": None,
        "completed_at": now,
    }


def _run_error(code: str, message: str) -> JSONObject:
    return {"code": code, "message": message, "stepId": None}


def _code(row: StepRunRow) -> str | None:
    error = row["error"]
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


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


def _redacted(redact: Redactor, value: JSON) -> JSON:
    """A failed attempt's output (a response body may echo a credential), masked like messages.
    Steps keep it small and shallow (``http``: 4 KB, nesting ≤ 64)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(redact, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(redact, item) for item in value]
    return value


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


def _env_for(run: RunRow, step_id: str) -> dict[str, str]:
    """The env a step sees: the run's, overlaid with the step's own entry of ``step_env``
    (Shipyard's per-vessel overrides); the run's own dict when the step has none."""
    own = (run["step_env"] or {}).get(step_id)
    return {**run["env"], **own} if own else run["env"]


def _env_values(run: RunRow) -> list[str]:
    """Every env value a step of the run may see: each is a secret to the redactor."""
    values = list(run["env"].values())
    for own in (run["step_env"] or {}).values():
        values.extend(own.values())
    return values


def _event_rows(
    run: RunRow, row: StepRunRow, waits: tuple[EventWait, ...]
) -> list[EventTriggerRow]:
    """The triggers a waiting attempt opens, bound to its run and step row; requested when the
    step computed their expiry, so that ``expires_at = requested_at + timeout_secs``."""
    return [
        EventTriggerRow(
            project_id=run["project_id"],
            id=wait.id,
            event_key=wait.key,
            source_type="workflow_step",
            workflow_run_id=run["id"],
            workflow_step_run_id=row["id"],
            job_run_id=None,
            any_of=wait.any_of,
            status="waiting",
            request_payload=wait.payload,
            response_payload=None,
            timeout_secs=wait.timeout_secs,
            requested_at=wait.expires_at - timedelta(seconds=wait.timeout_secs),
            received_at=None,
            expires_at=wait.expires_at,
            ended_at=None,
            error=None,
            sent_by=None,
            idempotency_key=None,
        )
        for wait in waits
    ]


def _error(code: str, message: str, step: StepDef) -> JSONObject:
    return {"code": code, "message": message.replace("\x00", "\ufffd"), "stepId": step.id}


def _without_nul(value: JSON) -> JSON:
    """``value`` with every U+0000 in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}  # type: ignore[misc]
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _describe(exc: BaseException) -> str:
    """An exception as a crash message: its type and the first line of its text, no SQL
    parameters (a database error's text may carry a step's output)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 500 else text[:499] + "…"


def _observe_step(step: StepDef, row: StepRunRow) -> None:
    """A finished attempt's duration (a waiting or skipped one has none yet)."""
    started, completed = row["started_at"], row["completed_at"]
    if started is not None and completed is not None:
        seconds = max(0.0, (completed - started).total_seconds())
        metrics.STEP_DURATION.labels(step.type, row["status"]).observe(seconds)


def _step_row(
    run: RunRow,
    step: StepDef,
    position: int,
    attempt: int,
    outcome: StepOutcome,
    started: datetime | None,
    completed: datetime | None,
) -> StepRunRow:
    waiting = outcome.status in (StepStatus.WAITING, StepStatus.RUNNING)
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
