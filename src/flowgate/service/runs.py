"""Runs: the one ``start_run`` every entry point calls, and reading, waiting, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowgate import errors, ids
from flowgate.engine import metrics
from flowgate.engine.definition import CompiledWorkflow
from flowgate.engine.notifier import RunWatch
from flowgate.engine.worker import Worker
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.jsondiff import differences, json_equal
from flowgate.service.workflows import find_workflow
from flowgate.statuses import DONE_STEP_STATUSES, UNFINISHED_RUN_STATUSES
from flowgate.store.base import (
    IdempotencyClaim,
    InsertedRun,
    NewRun,
    Page,
    RunFilter,
    RunQuota,
    RunRow,
    RunStats,
    RunStatus,
    ScheduleFire,
    StepRunRow,
    StepStatus,
    WorkflowRow,
    WorkflowStatus,
)
from flowgate.types import JSON, JSONObject

log = logging.getLogger(__name__)

SOURCES = (
    "api", "batch", "webhook", "schedule", "workflow", "replay", "rerun",
    "pinkfish", "axiom", "shipyard", "ui", "cli",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRun:
    workflow: str
    input: JSON = None
    env: dict[str, str] | None = None
    #: Env for single steps over the run's: ``{stepId: {NAME: value}}`` (Shipyard's overrides).
    step_env: dict[str, dict[str, str]] | None = None
    connection_id: str | None = None
    idempotency_key: str | None = None
    priority: int = 0
    source: str = "api"
    parent_run_id: str | None = None
    #: A schedule's due time: one run per due time, whoever asks (store: ``schedule_fires``).
    fire: ScheduleFire | None = None
    #: The new run's id, chosen before it exists (``start_run_and_wait`` watches it first).
    run_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedRun:
    run: RunRow
    replayed: bool = False


async def start_run(svc: Services, principal: Principal, cmd: StartRun) -> StartedRun:
    """Validate, record durably, wake the workers.

    Raises NotFound, InvalidStatus, InvalidRequest, ValidationFailed, IdempotencyKeyReused.
    """
    principal.require("workflows:execute")
    workflow = await _find_workflow(svc, principal, cmd.workflow)
    [result] = await _start_many(svc, principal, workflow, [cmd])
    if isinstance(result, errors.FlowgateError):
        raise result
    return result


StartResult = StartedRun | errors.FlowgateError


async def start_runs(
    svc: Services, principal: Principal, workflow_ref: str, cmds: list[StartRun]
) -> list[StartResult]:
    """Start several runs of one workflow in one transaction; one result (or error) per item.

    Raises NotFound for the workflow itself; each item's own problems are in its result.
    """
    principal.require("workflows:execute")
    workflow = await _find_workflow(svc, principal, workflow_ref)
    return await _start_many(svc, principal, workflow, cmds)


async def _find_workflow(svc: Services, principal: Principal, ref: str) -> WorkflowRow:
    workflow = await find_workflow(svc, principal.project_id, ref)
    if workflow is None:
        raise errors.NotFound("Workflow not found")
    return workflow


async def _start_many(
    svc: Services, principal: Principal, workflow: WorkflowRow, cmds: list[StartRun]
) -> list[StartResult]:
    results: list[StartResult | None] = [None] * len(cmds)
    to_insert: list[tuple[int, NewRun]] = []
    for index, cmd in enumerate(cmds):
        try:
            prepared = await _prepare(svc, principal, workflow, cmd)
        except errors.FlowgateError as exc:
            results[index] = exc
            continue
        if isinstance(prepared, StartedRun):
            results[index] = prepared
        else:
            to_insert.append((index, prepared))
    if to_insert:
        news = [new for _, new in to_insert]
        created = await create_runs(svc, principal.project_id, principal.run_quota_per_day, news)
        for (index, new), outcome in zip(to_insert, created, strict=True):
            results[index] = (
                outcome if isinstance(outcome, errors.FlowgateError) else (_outcome(outcome, new))
            )
    return [r for r in results if r is not None]


Created = InsertedRun | errors.QuotaExceeded


async def create_runs(
    svc: Services,
    project_id: str,
    quota: int | None,
    news: Sequence[NewRun],
    *,
    all_or_nothing: bool = False,
) -> list[Created]:
    """The one way runs come to exist, whatever started them: count them against the project's
    ``runQuotaPerDay`` (in the inserting transaction; an idempotent replay is not counted),
    insert them durably (``queued`` where a concurrency limit applies, then promoted as far as
    the limits allow), and wake the workers. One result per run, in order: the inserted run (or
    the one its idempotency key points to), or QuotaExceeded.

    ``all_or_nothing`` refuses every run when the quota cannot take them all.
    """
    limit = None
    if quota is not None:
        now = svc.clock.now()
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        limit = RunQuota(
            project_id=project_id, limit=quota, since=day_start, all_or_nothing=all_or_nothing
        )
    worker = svc.local_worker
    written, adopting = _leased_to(worker, news)
    try:
        inserted = await svc.store.insert_runs(written, quota=limit)
    except BaseException:
        if worker is not None:
            worker.release(sum(adopting))
        raise
    inserted, all_adopted = _hand_to_worker(worker, news, adopting, inserted)
    promoted: frozenset[str] = frozenset()
    for workflow_id, version in {
        (item.run["workflow_id"], item.run["workflow_version"])
        for item in inserted
        if item is not None and not item.replayed and item.run["status"] == RunStatus.QUEUED
    }:
        promoted |= await _promote(svc, project_id, workflow_id, version)
    if promoted or not all_adopted:
        svc.notifier.work_available()
    else:
        svc.notifier.runs_created()
    for item in inserted:
        if item is not None and not item.replayed:
            metrics.RUNS_STARTED.labels(item.run["workflow_id"], item.run["source"]).inc()
    refused = _quota_exceeded(quota, len(news) if all_or_nothing else 1)
    return [refused if item is None else _with_promotion(item, promoted) for item in inserted]


def _leased_to(worker: Worker | None, news: Sequence[NewRun]) -> tuple[list[NewRun], list[bool]]:
    """``news`` as they are written, and which of them ``worker`` takes as they are inserted
    (written already claimed by it, so no claim follows): pending runs (not held back by a
    limit) while it has a free slot and nothing else waits to be claimed."""
    if worker is None:
        return list(news), [False] * len(news)
    adopting = [new.row["status"] == RunStatus.PENDING and worker.reserve() for new in news]
    written = [
        dataclasses.replace(new, row=worker.as_claimed(new.row)) if adopt else new
        for new, adopt in zip(news, adopting, strict=True)
    ]
    return written, adopting


def _hand_to_worker(
    worker: Worker | None,
    news: Sequence[NewRun],
    adopting: Sequence[bool],
    inserted: Sequence[InsertedRun | None],
) -> tuple[list[InsertedRun | None], bool]:
    """Give ``worker`` the runs inserted leased to it and answer each as accepted (pending:
    the 201 says it was not held back). A slot whose run was not inserted (its idempotency key
    or due time already had a run, the quota refused it) is given back. Also says whether every
    run was adopted: then no worker needs waking."""
    if worker is None:
        return list(inserted), False
    answers: list[InsertedRun | None] = []
    all_adopted = True
    for new, adopt, item in zip(news, adopting, inserted, strict=True):
        ours = item is not None and not item.replayed and item.run["id"] == new.row["id"]
        if adopt and ours and item is not None:  # (``ours`` implies it; mypy needs it said)
            worker.adopt(item.run)
            item = InsertedRun(run=new.row)
        elif adopt:
            worker.release(1)
        all_adopted = all_adopted and adopt and ours
        answers.append(item)
    return answers, all_adopted


def _quota_exceeded(quota: int | None, wanted: int) -> errors.QuotaExceeded:
    if wanted > 1:
        return errors.QuotaExceeded(
            f"Starting {wanted} runs would exceed the project's run quota of {quota} runs per day"
        )
    return errors.QuotaExceeded(f"The project's run quota of {quota} runs per day is used")


async def _promote(
    svc: Services, project_id: str, workflow_id: str, version: int
) -> frozenset[str]:
    """Start queued runs of a workflow with a concurrency limit, as far as it allows."""
    compiled = await svc.catalog.get(project_id, workflow_id, version)
    if compiled.concurrency is None:
        return frozenset()
    return frozenset(
        await svc.store.promote_queued(
            project_id,
            workflow_id,
            limit=compiled.concurrency.limit,
            total_limit=compiled.concurrency.total_limit,
        )
    )


async def keep_queues_moving(svc: Services, *, every: float) -> None:
    """Safety net: promote queued runs every ``every`` seconds, in case the process that should
    have promoted them (after a run ended) died first. Runs until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            queued = await svc.store.queued_workflows()
        except Exception:
            log.exception("queues.scan_failed")
            continue
        for project_id, workflow_id, version in queued:
            try:
                if await _promote(svc, project_id, workflow_id, version):
                    svc.notifier.work_available()
            except Exception:
                # One broken workflow version must not hold up every other queue.
                log.exception("queues.promote_failed", extra={"workflow_id": workflow_id})


def _with_promotion(inserted: InsertedRun, promoted: frozenset[str]) -> InsertedRun:
    if inserted.replayed or inserted.run["id"] not in promoted:
        return inserted
    run = RunRow(**{**inserted.run, "status": RunStatus.PENDING.value})
    return InsertedRun(run=run, replayed=False, stored_input=inserted.stored_input)


def _outcome(inserted: InsertedRun, new: NewRun) -> StartResult:
    if not inserted.replayed:
        return StartedRun(run=inserted.run)
    if new.idempotency is None:  # a schedule's due time that already has its run
        return StartedRun(run=inserted.run, replayed=True)
    try:
        return _replay(inserted.run, stored=inserted.stored_input, sent=new.idempotency.input)
    except errors.FlowgateError as exc:
        return exc


async def _prepare(
    svc: Services, principal: Principal, workflow: WorkflowRow, cmd: StartRun
) -> NewRun | StartedRun:
    """The run to insert, or the earlier run when an inactive workflow's key replays."""
    sent_input = {} if cmd.input is None else cmd.input
    if not isinstance(sent_input, dict):
        raise errors.InvalidRequest(
            "input must be an object", details=[{"path": ["input"], "message": "must be an object"}]
        )
    if workflow["status"] != WorkflowStatus.ACTIVE:
        return await _replay_inactive(svc, workflow, cmd, sent_input)
    compiled = svc.catalog.compiled(
        workflow["project_id"], workflow["id"], workflow["version"], workflow["definition"]
    )
    step_env = _step_env_by_id(compiled, cmd.step_env)
    run_input, problems = compiled.validator.validate(sent_input)
    if problems:
        raise errors.ValidationFailed(
            "Input validation failed",
            details=[{"path": p.path, "message": p.message} for p in problems],
        )
    if cmd.connection_id is not None:
        connection = await svc.store.get_connection(principal.project_id, cmd.connection_id)
        if connection is None:
            raise errors.NotFound("Connection not found")
    return _new_run(
        svc, principal, workflow, compiled, cmd, run_input, sent_input, step_env=step_env
    )


def _new_run(
    svc: Services,
    principal: Principal,
    workflow: WorkflowRow,
    compiled: CompiledWorkflow,
    cmd: StartRun,
    run_input: JSON,
    sent_input: JSON,
    *,
    step_env: dict[str, dict[str, str]] | None,
) -> NewRun:
    now = svc.clock.now()
    env = {**compiled.env, **(cmd.env or {})}
    queued = compiled.concurrency is not None
    run = RunRow(
        id=cmd.run_id or ids.new_id("run"),
        project_id=principal.project_id,
        workflow_id=workflow["id"],
        workflow_version=workflow["version"],
        status=(RunStatus.QUEUED if queued else RunStatus.PENDING).value,
        input=run_input,
        env=env,
        output=None,
        error=None,
        source=cmd.source,
        parent_run_id=cmd.parent_run_id,
        connection_id=cmd.connection_id,
        priority=cmd.priority,
        concurrency_key=_concurrency_key(svc, compiled, run_input, env) if queued else None,
        queued_reason=None,
        lease_owner=None,
        lease_expires_at=None,
        lease_epoch=0,
        crash_count=0,
        step_env=step_env,
        origin_run_id=None,
        wake_at=None,
        created_at=now,
        started_at=None,
        completed_at=None,
    )
    claim = None
    if cmd.idempotency_key is not None:
        ttl = timedelta(seconds=svc.settings.idempotency_ttl_secs)
        claim = IdempotencyClaim(key=cmd.idempotency_key, input=sent_input, expires_at=now + ttl)
    return NewRun(row=run, idempotency=claim, fire=cmd.fire)


def _step_env_by_id(
    compiled: CompiledWorkflow, step_env: dict[str, dict[str, str]] | None
) -> dict[str, dict[str, str]] | None:
    """``step_env`` keyed by step id. A key names a step by its id, else by its exact name
    (Shipyard's vessels are named); entries that name the same step merge in order, and empty
    ones are dropped. Raises InvalidRequest for a key that names no step, or a name several
    steps share."""
    if not step_env:
        return None
    resolved: dict[str, dict[str, str]] = {}
    for ref, values in step_env.items():
        step_id = _step_id_of(compiled, ref)
        resolved[step_id] = {**resolved.get(step_id, {}), **values}
    return {step_id: values for step_id, values in resolved.items() if values} or None


def _step_id_of(compiled: CompiledWorkflow, ref: str) -> str:
    if any(step.id == ref for step in compiled.steps):
        return ref
    named = [step.id for step in compiled.steps if step.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        why = "several steps have this name; name the step by its id"
        message = f"Ambiguous step {ref!r}: {why}"
    else:
        why = "no step of the workflow has this id or name"
        message = f"Unknown step {ref!r}: {why}"
    raise errors.InvalidRequest(message, details=[{"path": ["stepEnv", ref], "message": why}])


def _concurrency_key(
    svc: Services, compiled: CompiledWorkflow, run_input: JSON, env: dict[str, str]
) -> str | None:
    """The rendered ``concurrency.key`` (None without a key: the whole workflow is one)."""
    assert compiled.concurrency is not None  # noqa: S101 - only called for limited workflows
    template = compiled.concurrency.key
    if template is None:
        return None
    try:
        value = svc.templates.render(template, {"input": run_input, "env": env})
    except errors.TemplateError:
        value = None
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return text[:500]


def _replay(run: RunRow, *, stored: JSON, sent: JSON) -> StartedRun:
    if not json_equal(stored, sent):
        raise errors.IdempotencyKeyReused(
            "This idempotency key was already used with a different input",
            details={"runId": run["id"], "differences": differences(stored, sent)},
        )
    return StartedRun(run=run, replayed=True)


async def _replay_inactive(
    svc: Services, workflow: WorkflowRow, cmd: StartRun, sent_input: JSON
) -> StartedRun:
    """A replay answers even if the workflow was paused since; anything else is INVALID_STATUS."""
    if cmd.idempotency_key is not None:
        found = await svc.store.get_idempotent_run(
            workflow["project_id"], workflow["id"], cmd.idempotency_key, now=svc.clock.now()
        )
        if found is not None:
            return _replay(found.run, stored=found.stored_input, sent=sent_input)
    raise errors.InvalidStatus(
        f"Workflow must be active to run. Current status: {workflow['status']}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDetail:
    run: RunRow
    steps: list[StepView]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepView:
    """One step of a run as shown: its latest attempt, or ``pending`` if it has not started."""

    id: str
    name: str | None
    type: str
    row: StepRunRow | None
    #: Shown when the step never started: ``pending``, or ``canceled`` in a canceled run.
    not_started: str = StepStatus.PENDING.value


async def get_run(svc: Services, principal: Principal, run_id: str) -> RunDetail:
    """Raises NotFound ("Run not found")."""
    principal.require("runs:read")
    found = await svc.store.get_run_with_steps(principal.project_id, run_id)
    if found is None:
        raise errors.NotFound("Run not found")
    run, rows = found
    return await describe_run(svc, run, rows)


async def describe_run(
    svc: Services, run: RunRow, rows: Sequence[StepRunRow] | None = None
) -> RunDetail:
    """The run with a view of every step; ``rows`` are its attempts when already read."""
    workflow = await svc.catalog.get(run["project_id"], run["workflow_id"], run["workflow_version"])
    if rows is None:
        rows = await svc.store.list_step_runs(run["id"]) if run["started_at"] else []
    latest = {row["step_id"]: row for row in rows}
    not_started = (
        StepStatus.CANCELED if run["status"] == RunStatus.CANCELED else StepStatus.PENDING
    ).value
    steps = [
        StepView(
            id=step.id,
            name=step.name,
            type=step.type,
            row=latest.get(step.id),
            not_started=not_started,
        )
        for step in workflow.steps
    ]
    [run] = await explain_queued(svc, [run])
    return RunDetail(run=run, steps=steps)


async def explain_queued(svc: Services, runs: Sequence[RunRow]) -> list[RunRow]:
    """The runs, each still ``queued`` with its ``queued_reason`` filled in (DESIGN §11).

    One position query per queued run: callers pass one page of a list, never a whole table.
    """
    explained = []
    for run in runs:
        if run["status"] == RunStatus.QUEUED:
            workflow = await svc.catalog.get(
                run["project_id"], run["workflow_id"], run["workflow_version"]
            )
            if workflow.concurrency is not None:
                reason = await _queued_reason(svc, run, workflow)
                run = RunRow(**{**run, "queued_reason": reason})
        explained.append(run)
    return explained


async def _queued_reason(svc: Services, run: RunRow, workflow: CompiledWorkflow) -> JSONObject:
    """``{kind, key, position, limit}`` (DESIGN §11), computed when asked, never stale."""
    assert workflow.concurrency is not None  # noqa: S101 - the caller checked
    limits = workflow.concurrency
    position, key_active, all_active = await svc.store.queue_position(run)
    key_full = limits.limit is not None and key_active >= limits.limit
    total_full = limits.total_limit is not None and all_active >= limits.total_limit
    if key_full or not total_full:
        return {
            "kind": "concurrency_key",
            "key": run["concurrency_key"],
            "position": position,
            "limit": limits.limit,
        }
    return {
        "kind": "concurrency_total",
        "key": run["concurrency_key"],
        "position": position,
        "limit": limits.total_limit,
    }


def watch_new_run(svc: Services) -> RunWatch:
    """A watch on a run that does not exist yet: start it with ``StartRun(run_id=watch.run_id)``
    inside the ``with``, then ``wait_for_started_run``. Its end cannot pass unseen."""
    return svc.notifier.watch_run(ids.new_id("run"))


async def wait_for_started_run(
    svc: Services, principal: Principal, watch: RunWatch, started: StartedRun, seconds: float
) -> RunDetail:
    """``started`` once it has ended, or as it is after ``seconds``: read once, at the end, when
    it is the new run ``watch`` has watched since before its insert; a run an idempotency key
    answered with is read first, as ``wait_for_run`` does."""
    if started.run["id"] != watch.run_id:
        return await wait_for_run(svc, principal, started.run["id"], seconds)
    await watch.wait(seconds)
    return await get_run(svc, principal, watch.run_id)


async def start_run_and_wait(
    svc: Services, principal: Principal, cmd: StartRun, seconds: float
) -> tuple[StartedRun, RunDetail]:
    """``start_run``, then wait for its end (``x-api-wait``) without reading it twice."""
    with watch_new_run(svc) as watch:
        started = await start_run(svc, principal, dataclasses.replace(cmd, run_id=watch.run_id))
        return started, await wait_for_started_run(svc, principal, watch, started, seconds)


async def wait_for_run(
    svc: Services, principal: Principal, run_id: str, seconds: float
) -> RunDetail:
    """The run once it has ended, or as it is after ``seconds``."""
    with svc.notifier.watch_run(run_id) as watch:
        detail = await get_run(svc, principal, run_id)
        if RunStatus(detail.run["status"]).is_terminal or seconds <= 0:
            return detail
        await watch.wait(seconds)
    return await get_run(svc, principal, run_id)


async def list_runs(
    svc: Services, principal: Principal, where: RunFilter, page: Page
) -> list[RunRow]:
    principal.require("runs:read")
    return await svc.store.list_runs(principal.project_id, where, page)


CANCELED_BY_USER: JSONObject = {"code": "CANCELED", "message": "Canceled by user", "stepId": None}


async def cancel_run(svc: Services, principal: Principal, run_id: str) -> RunRow:
    """Raises NotFound, or Conflict when the run has already ended."""
    principal.require("runs:write")
    existing = await _run_or_404(svc, principal, run_id)
    if not RunStatus(existing["status"]).is_terminal:
        await _cancel(svc, principal.project_id, run_ids=[run_id])
    run = await _run_or_404(svc, principal, run_id)
    if run["status"] != RunStatus.CANCELED:
        raise errors.Conflict(f"Run has already ended with status {run['status']}")
    return run


async def _cancel(
    svc: Services,
    project_id: str,
    *,
    run_ids: Sequence[str] | None = None,
    where: RunFilter | None = None,
) -> list[str]:
    """The one way runs are canceled (one, many, a parent with its children): the runs, their
    descendants and their in-flight steps end in one transaction; then waiters are told and
    the queues they held places in move on. Returns the selected runs it canceled."""
    canceled = await svc.store.cancel_runs(
        project_id,
        run_ids=run_ids,
        where=where,
        limit=BULK_LIMIT,
        error=CANCELED_BY_USER,
        now=svc.clock.now(),
    )
    for run in canceled:
        svc.notifier.run_finished(run.id)
        metrics.RUNS_FINISHED.labels(run.workflow_id, RunStatus.CANCELED.value).inc()
    promoted: frozenset[str] = frozenset()
    for workflow_id, version in {(run.workflow_id, run.workflow_version) for run in canceled}:
        with contextlib.suppress(LookupError):
            promoted |= await _promote(svc, project_id, workflow_id, version)
    if promoted:
        svc.notifier.work_available()
    return [run.id for run in canceled if not run.descendant]


async def _copy_run(svc: Services, original: RunRow, *, source: str) -> RunRow:
    """A new run of the original's workflow version with its input and env; ``queued`` where
    that version has a concurrency limit, like any other new run."""
    compiled = await svc.catalog.get(
        original["project_id"], original["workflow_id"], original["workflow_version"]
    )
    status = RunStatus.QUEUED if compiled.concurrency is not None else RunStatus.PENDING
    return RunRow(
        **{
            **original,
            "id": ids.new_id("run"),
            "status": status.value,
            "output": None,
            "error": None,
            "source": source,
            "origin_run_id": original["id"],
            "parent_run_id": None,
            "queued_reason": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "lease_epoch": 0,
            "crash_count": 0,
            "wake_at": None,
            "created_at": svc.clock.now(),
            "started_at": None,
            "completed_at": None,
        }
    )


async def _run_or_404(svc: Services, principal: Principal, run_id: str) -> RunRow:
    run = await svc.store.get_run(principal.project_id, run_id)
    if run is None:
        raise errors.NotFound("Run not found")
    return run


async def _start_copy(svc: Services, principal: Principal, new: NewRun) -> StartedRun:
    [created] = await create_runs(svc, principal.project_id, principal.run_quota_per_day, [new])
    if isinstance(created, errors.FlowgateError):
        raise created
    return StartedRun(run=created.run)


async def replay_run(svc: Services, principal: Principal, run_id: str) -> StartedRun:
    """A new run of the same version with the same input. Raises NotFound, QuotaExceeded."""
    principal.require("runs:write")
    original = await _run_or_404(svc, principal, run_id)
    return await _start_copy(
        svc, principal, NewRun(row=await _copy_run(svc, original, source="replay"))
    )


async def rerun_run(svc: Services, principal: Principal, run_id: str) -> StartedRun:
    """A new run that reuses the original's finished steps and starts at the first other one.

    Raises NotFound, QuotaExceeded, or Conflict while the original has not ended.
    """
    principal.require("runs:write")
    original = await _run_or_404(svc, principal, run_id)
    if not RunStatus(original["status"]).is_terminal:
        raise errors.Conflict(
            f"Only a run that has ended can be rerun (it is {original['status']})"
        )
    workflow = await svc.catalog.get(
        original["project_id"], original["workflow_id"], original["workflow_version"]
    )
    latest = {row["step_id"]: row for row in await svc.store.list_step_runs(original["id"])}
    run = await _copy_run(svc, original, source="rerun")
    reused: list[StepRunRow] = []
    for step in workflow.steps:
        row = latest.get(step.id)
        if row is None or row["status"] not in DONE_STEP_STATUSES:
            break
        reused.append(StepRunRow(**{**row, "id": ids.new_id("stp"), "run_id": run["id"]}))
    return await _start_copy(svc, principal, NewRun(row=run, steps=reused))


def parse_statuses(raw: Sequence[str]) -> list[str]:
    """Run statuses as a list filter takes them: repeated or comma-separated. Raises
    InvalidRequest naming the first unknown one."""
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    allowed = {s.value for s in RunStatus}
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise errors.InvalidRequest(
            f"Unknown status {unknown[0]!r}; one of {', '.join(sorted(allowed))}"
        )
    return values


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkResult:
    matched: int
    run_ids: list[str]
    dry_run: bool


BULK_LIMIT = 10_000


async def cancel_runs(
    svc: Services, principal: Principal, where: RunFilter, *, dry_run: bool
) -> BulkResult:
    """Cancel every unfinished run matching ``where`` (at most BULK_LIMIT per call)."""
    principal.require("runs:write")
    unfinished = dataclasses.replace(
        where, statuses=[s for s in (where.statuses or _UNFINISHED) if s in _UNFINISHED]
    )
    if not unfinished.statuses:
        return BulkResult(matched=0, run_ids=[], dry_run=dry_run)
    matched = await svc.store.count_runs(principal.project_id, unfinished)
    if dry_run:
        return BulkResult(matched=matched, run_ids=[], dry_run=True)
    canceled = await _cancel(svc, principal.project_id, where=unfinished)
    return BulkResult(matched=matched, run_ids=canceled, dry_run=False)


async def replay_runs(
    svc: Services, principal: Principal, where: RunFilter, *, dry_run: bool
) -> BulkResult:
    """Replay every run matching ``where`` (at most BULK_LIMIT per call); all or none of them
    when the project's quota is short. Raises QuotaExceeded."""
    principal.require("runs:write")
    matched = await svc.store.count_runs(principal.project_id, where)
    if dry_run:
        return BulkResult(matched=matched, run_ids=[], dry_run=True)
    originals = await svc.store.list_runs(principal.project_id, where, Page(limit=BULK_LIMIT))
    copies = [NewRun(row=await _copy_run(svc, run, source="replay")) for run in reversed(originals)]
    created = await create_runs(
        svc, principal.project_id, principal.run_quota_per_day, copies, all_or_nothing=True
    )
    run_ids = []
    for outcome in created:
        if isinstance(outcome, errors.FlowgateError):
            raise outcome
        run_ids.append(outcome.run["id"])
    return BulkResult(matched=matched, run_ids=run_ids, dry_run=False)


_UNFINISHED = tuple(sorted(status.value for status in UNFINISHED_RUN_STATUSES))


async def latest_run_of_workflow(
    svc: Services, principal: Principal, workflow_ref: str, *, by_name: bool = False
) -> RunRow | None:
    """The workflow's newest run by creation, whatever started it, or None if it has none.
    ``by_name``: only the exact name matches, never an id. Raises NotFound ("Workflow not
    found"), Forbidden (no ``runs:read``)."""
    principal.require("runs:read")
    workflow = await find_workflow(svc, principal.project_id, workflow_ref)
    if workflow is None or (by_name and workflow["name"] != workflow_ref):
        raise errors.NotFound("Workflow not found")
    newest = await svc.store.list_runs(
        principal.project_id, RunFilter(workflow_id=workflow["id"]), Page(limit=1)
    )
    return newest[0] if newest else None


async def find_run(svc: Services, principal: Principal, run_id: str) -> RunRow | None:
    """The project's run with this id, or None. Raises Forbidden (no ``runs:read``)."""
    principal.require("runs:read")
    return await svc.store.get_run(principal.project_id, run_id)


async def count_runs_by_status(
    svc: Services, principal: Principal, where: RunFilter
) -> dict[str, int]:
    """How many runs match ``where``, per status (one query). Raises Forbidden."""
    principal.require("runs:read")
    return await svc.store.count_runs_by_status(principal.project_id, where)


async def child_runs(
    svc: Services, principal: Principal, run_id: str, *, limit: int
) -> list[RunRow]:
    """The runs this run started (newest first, at most ``limit``). Raises Forbidden."""
    principal.require("runs:read")
    return await svc.store.list_child_runs(principal.project_id, run_id, limit=limit)


async def step_attempts(svc: Services, principal: Principal, run: RunRow) -> list[StepRunRow]:
    """Every attempt of every step of ``run`` (one the caller has read), in step order, then
    attempt order: retries and attempts lost with their worker included. Raises Forbidden."""
    principal.require("runs:read")
    if run["project_id"] != principal.project_id:
        raise errors.NotFound("Run not found")
    return await svc.store.list_step_runs(run["id"])


async def unfinished_run_ids(svc: Services, principal: Principal, *, limit: int) -> list[str]:
    """Ids of the project's runs that have not ended, newest first. Raises Forbidden."""
    principal.require("runs:read")
    return await svc.store.unfinished_run_ids(principal.project_id, limit=limit)


#: The overview reads its newest hour of buckets on every request; older buckets barely change
#: (a run created there may still end), so they come from ``Services.stats_cache`` for
#: ``SETTLED_STATS_TTL_SECS``: with 100,000 runs a day that is one scan of an hour, not of a day.
RECENT_STATS = timedelta(hours=1)


async def run_stats(
    svc: Services, principal: Principal, *, since: datetime, width: timedelta, buckets: int
) -> list[RunStats]:
    """The project's runs per time bucket and workflow (the monitor's overview); buckets older
    than RECENT_STATS may be up to SETTLED_STATS_TTL_SECS old. Raises Forbidden without
    ``runs:read``."""
    principal.require("runs:read")
    recent = max(1, min(buckets, -(-RECENT_STATS // width)))
    settled = buckets - recent
    project = principal.project_id
    older: list[RunStats] = []
    if settled:
        key = (project, since, width, settled)
        cached = svc.stats_cache.get(key)
        if cached is None:
            cached = await svc.store.run_stats(project, since=since, width=width, buckets=settled)
            svc.stats_cache.put(key, cached)
        older = cached
    newer = await svc.store.run_stats(
        project, since=since + width * settled, width=width, buckets=recent
    )
    return [*older, *newer]
