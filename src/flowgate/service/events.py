"""Event triggers (DESIGN §6): sending events to durable waits, cancelling, reading, purging,
and standalone waits. The Strait-style API (``api/routes/events.py``), the CLI and the SDK all
come here; the store decides every race (``store/events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowgate import errors, ids, jsonvalue
from flowgate.engine.steps.wait_for_event import MAX_TIMEOUT_SECS, key_problem
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.jsondiff import json_equal
from flowgate.statuses import EventStatus
from flowgate.store.base import EventFilter, EventKeyTaken, EventTriggerRow, Page
from flowgate.types import JSON

log = logging.getLogger(__name__)

SOURCE_TYPES = ("workflow_step", "job_run")
MAX_BUFFER_SECS = 7 * 86_400
MAX_LIST_LIMIT = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A send's answer: the trigger it resolved (or resolved before, for an idempotent resend),
    or, for an event kept for a later wait, when that keeping ends."""

    trigger: EventTriggerRow | None
    buffered_until: datetime | None = None


def check_key(key: str, *, what: str = "event key") -> None:
    """Raises InvalidRequest unless ``key`` is 1 to 512 characters without control characters."""
    problem = key_problem(key)
    if problem is not None:
        raise errors.InvalidRequest(f"{what} {problem}")


def check_payload(svc: Services, payload: JSON) -> None:
    """An event payload is bounded like a step output (it becomes one)."""
    size = len(jsonvalue.dumps(payload))
    if size > svc.settings.max_output_bytes:
        raise errors.PayloadTooLarge(
            f"The payload is {size:,} bytes of JSON, over the limit of "
            f"{svc.settings.max_output_bytes:,} (FLOWGATE_MAX_OUTPUT_BYTES)"
        )


def sender(principal: Principal) -> str:
    return f"api-key:{principal.key_id}"


async def send_event(
    svc: Services,
    principal: Principal,
    key: str,
    payload: JSON,
    *,
    buffer_secs: float | None = None,
    idempotency_key: str | None = None,
) -> Sent:
    """Resolve the key's waiting trigger with ``payload``; its step completes with it and its
    run resumes. When nothing waits, the event is kept for ``buffer_secs`` (None: the project's
    ``event_buffer_secs``; 0: not kept, whatever the project says) for the first wait on the
    key. Raises NotFound (no trigger, nothing buffered), Conflict (not waiting, and not an equal
    resend or the same ``idempotency_key``), InvalidRequest, PayloadTooLarge."""
    principal.require("events:write")
    check_key(key)
    check_payload(svc, payload)
    now = svc.clock.now()
    if buffer_secs is None:
        buffer_secs = principal.event_buffer_secs
    elif not 0 <= buffer_secs <= MAX_BUFFER_SECS:
        raise errors.InvalidRequest(
            f"buffer_secs must be between 0 (do not buffer) and {MAX_BUFFER_SECS}"
        )
    buffer_until = now + timedelta(seconds=buffer_secs) if buffer_secs else None
    sent = await svc.store.send_event(
        principal.project_id,
        key,
        payload,
        sent_by=sender(principal),
        now=now,
        buffer_until=buffer_until,
        idempotency_key=idempotency_key,
    )
    if sent.resolved:
        svc.notifier.work_available()
        svc.notifier.event_changed(principal.project_id, key)
        return Sent(trigger=sent.trigger)
    if sent.buffered_until is not None:
        return Sent(trigger=None, buffered_until=sent.buffered_until)
    trigger = sent.trigger
    if trigger is None:
        raise errors.NotFound("event trigger not found")
    if trigger["status"] == EventStatus.RECEIVED and (
        json_equal(trigger["response_payload"], payload)
        or (idempotency_key is not None and trigger["idempotency_key"] == idempotency_key)
    ):
        return Sent(trigger=trigger)
    raise errors.Conflict("event trigger is not in waiting state")


async def send_by_prefix(
    svc: Services, principal: Principal, prefix: str, payload: JSON
) -> list[EventTriggerRow]:
    """Resolve every waiting trigger of the project whose key starts with ``prefix``."""
    principal.require("events:write")
    if not isinstance(prefix, str) or not 1 <= len(prefix) <= 512:
        raise errors.InvalidRequest("prefix must be 1 to 512 characters")
    check_key(prefix, what="prefix")
    check_payload(svc, payload)
    resolved = await svc.store.send_events_by_prefix(
        principal.project_id, prefix, payload, sent_by=sender(principal), now=svc.clock.now()
    )
    if resolved:
        svc.notifier.work_available()
    for trigger in resolved:
        svc.notifier.event_changed(principal.project_id, trigger["event_key"])
    return resolved


async def cancel_event(svc: Services, principal: Principal, key: str) -> EventTriggerRow:
    """Cancel the key's waiting trigger; a step waiting on it ends ``canceled`` and its run
    ``failed``. Raises NotFound, Conflict (not waiting)."""
    principal.require("events:write")
    check_key(key)
    trigger, canceled = await svc.store.cancel_event(principal.project_id, key, now=svc.clock.now())
    if trigger is None:
        raise errors.NotFound("event trigger not found")
    if not canceled:
        raise errors.Conflict("event trigger is not in waiting state")
    svc.notifier.work_available()
    svc.notifier.event_changed(principal.project_id, key)
    return trigger


async def get_event(svc: Services, principal: Principal, key: str) -> EventTriggerRow:
    """The key's waiting trigger, else its newest. Raises NotFound."""
    principal.require("runs:read")
    check_key(key)
    trigger = await svc.store.get_event_trigger(principal.project_id, key)
    if trigger is None:
        raise errors.NotFound("event trigger not found")
    return trigger


async def list_events(
    svc: Services,
    principal: Principal,
    where: EventFilter,
    *,
    limit: int,
    before: datetime | None,
) -> tuple[list[EventTriggerRow], datetime | None]:
    """Newest first, and the ``requested_at`` to pass as the next page's cursor (None at the
    end). A page never splits triggers requested at the same instant, so a cursor that is only
    a timestamp skips nothing: a tie at the page's end moves to the next page (or, when the
    whole page is one instant, the page grows to hold all of it)."""
    principal.require("runs:read")
    limit = min(limit, MAX_LIST_LIMIT)
    after = None if before is None else (before, "")
    rows = await svc.store.list_event_triggers(
        principal.project_id, where, Page(limit=limit + 1, after=after)
    )
    if len(rows) <= limit:
        return rows, None
    boundary = rows[limit - 1]["requested_at"]
    if rows[limit]["requested_at"] != boundary:
        return rows[:limit], boundary
    page = [row for row in rows[:limit] if row["requested_at"] != boundary]
    if page:
        return page, page[-1]["requested_at"]
    tied = await svc.store.list_event_triggers(
        principal.project_id,
        EventFilter(
            statuses=where.statuses,
            workflow_run_id=where.workflow_run_id,
            source_type=where.source_type,
            requested_at=boundary,
        ),
        Page(limit=10_000),
    )
    older = await svc.store.list_event_triggers(
        principal.project_id, where, Page(limit=1, after=(boundary, ""))
    )
    return tied, boundary if older else None


async def event_stats(svc: Services, principal: Principal) -> dict[str, object]:
    principal.require("runs:read")
    stats = await svc.store.event_stats(principal.project_id)
    counts: dict[str, int] = stats["counts"]
    return {
        "total_count": sum(counts.values()),
        "waiting_count": counts.get(EventStatus.WAITING.value, 0),
        "received_count": counts.get(EventStatus.RECEIVED.value, 0),
        "timed_out_count": counts.get(EventStatus.TIMED_OUT.value, 0),
        "canceled_count": counts.get(EventStatus.CANCELED.value, 0),
        "avg_wait_duration_secs": float(stats["avg_wait_secs"]),
    }


async def purge_events(
    svc: Services, principal: Principal, *, older_than_days: int, dry_run: bool
) -> int:
    """Delete (or count) ended triggers that ended more than ``older_than_days`` ago."""
    principal.require("events:write")
    if not 1 <= older_than_days <= 36_500:
        raise errors.InvalidRequest("older_than_days must be >= 1")
    before = svc.clock.now() - timedelta(days=older_than_days)
    return await svc.store.purge_event_triggers(
        principal.project_id, ended_before=before, dry_run=dry_run
    )


async def create_wait(
    svc: Services,
    principal: Principal,
    key: str,
    *,
    timeout_secs: float,
    request_payload: JSON = None,
) -> EventTriggerRow:
    """A standalone (``job_run``) wait that clients send to, stream or poll. Raises Conflict
    when the key already waits, InvalidRequest."""
    principal.require("events:write")
    check_key(key)
    check_payload(svc, request_payload)
    if not 0 < timeout_secs <= MAX_TIMEOUT_SECS:
        raise errors.InvalidRequest(f"timeout_secs must be between 1 and {int(MAX_TIMEOUT_SECS)}")
    now = svc.clock.now()
    row = EventTriggerRow(
        project_id=principal.project_id,
        id=ids.new_id("evt"),
        event_key=key,
        source_type="job_run",
        workflow_run_id=None,
        workflow_step_run_id=None,
        job_run_id=ids.new_id("job"),
        any_of=False,
        status=EventStatus.WAITING.value,
        request_payload=request_payload,
        response_payload=None,
        timeout_secs=float(timeout_secs),
        requested_at=now,
        received_at=None,
        expires_at=now + timedelta(seconds=timeout_secs),
        ended_at=None,
        error=None,
        sent_by=None,
        idempotency_key=None,
    )
    try:
        created = await svc.store.create_job_wait(row)
    except EventKeyTaken as exc:
        raise errors.Conflict("an event trigger with this key is already waiting") from exc
    svc.notifier.waits_opened()
    return created


async def expire_due_waits(svc: Services, *, every: float, batch: int = 1000) -> None:
    """Time out waits as they expire: sleep until the next expiry (at most ``every`` seconds;
    woken early when this process opens new waits), end every due one in bulk, announce them.
    Runs until cancelled. Every process with workers runs one; the compare-and-set on
    ``waiting`` lets them race harmlessly. Only opened waits wake it, not every new run: its
    sweep is a write, and on SQLite a write queues behind, or ahead of, the runs' own."""
    woken = asyncio.Event()
    svc.notifier.on_waits(woken.set)
    while True:
        woken.clear()
        pause = every
        try:
            ended, upcoming = await svc.store.expire_due_waits(now=svc.clock.now(), limit=batch)
            for trigger in ended:
                svc.notifier.event_changed(trigger["project_id"], trigger["event_key"])
            if len(ended) >= batch:
                continue  # more are due now
            if upcoming is not None:
                pause = min(every, max((upcoming - svc.clock.now()).total_seconds(), 0.001))
        except Exception:
            log.exception("events.expire_failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await woken.wait()
