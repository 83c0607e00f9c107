"""Run, step and workflow statuses, and the sets the rest of flowgate reasons with (a leaf).

One place for them, so that "unfinished", "terminal" and "holds a concurrency slot" mean the
same thing in the store, the engine, the service layer and the SDK.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"
    WAITING = "waiting"


class EventStatus(StrEnum):
    """An event trigger's status (DESIGN §6); only ``waiting`` changes."""

    WAITING = "waiting"
    RECEIVED = "received"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"


class WorkflowStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.TIMED_OUT}
)
#: Runs that have not ended: a cancel applies to them.
UNFINISHED_RUN_STATUSES = frozenset(
    {RunStatus.QUEUED, RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING}
)
#: Runs that hold a concurrency slot: started (or about to be) and not ended.
ACTIVE_RUN_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING})
#: Step attempts still in flight: a canceled run turns them into ``canceled``.
IN_FLIGHT_STEP_STATUSES = frozenset({StepStatus.RUNNING, StepStatus.WAITING, StepStatus.PENDING})
#: Step outcomes that let the run go on to the next step.
DONE_STEP_STATUSES = frozenset({StepStatus.COMPLETED, StepStatus.SKIPPED})
#: Step outcomes that ``retry`` applies to.
RETRYABLE_STEP_STATUSES = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})
