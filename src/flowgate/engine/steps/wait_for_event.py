"""``wait_for_event``: wait durably for an event sent to a key (DESIGN §6, §11).

Config: ``eventKey`` (templated) or ``anyOf: [keys]``, ``timeoutSecs`` (default one day),
``onTimeout: fail|continue``, ``payload`` (shown to senders as the trigger's
``request_payload``) and ``timeoutOutput`` (the output when it times out and continues).

The first execution opens one event trigger per key, in the transaction that parks the run, and
the run waits with no worker until ``expires_at``. A send resolves the trigger, completes this
step with the payload as its output and wakes the run in one transaction, so the step is not
executed again. It is executed again only when the run wakes otherwise: at ``expires_at`` (the
triggers are timed out unless a send came first), after a cancel (the step ends ``canceled``),
or after a crash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from flowgate import clock, ids
from flowgate.engine.steps import (
    CheckContext,
    EventWait,
    Problem,
    StepContext,
    StepFailure,
    StepWait,
    register_step,
)
from flowgate.engine.steps.sleep import parse_until
from flowgate.types import JSON, JSONObject

DEFAULT_TIMEOUT_SECS = 86_400.0
MAX_TIMEOUT_SECS = 366 * 86_400.0
MAX_KEY_LENGTH = 512
MAX_ANY_OF = 20
_CONFIG = frozenset({"eventKey", "anyOf", "timeoutSecs", "onTimeout", "payload", "timeoutOutput"})


def key_problem(key: object) -> str | None:
    """Why ``key`` is not an event key (1 to 512 characters, no control characters), or None."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"must be a string of 1 to {MAX_KEY_LENGTH} characters"
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in key):
        return "must not contain control characters"
    return None


def _templated(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


@register_step("wait_for_event")
class WaitForEvent:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = False

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        config = step.get("config")
        if not isinstance(config, dict):
            return [Problem(["config"], "wait_for_event steps need config.eventKey or anyOf")]
        problems = [
            Problem(["config", name], f"unknown field; use one of {sorted(_CONFIG)}")
            for name in config
            if name not in _CONFIG
        ]
        if ("eventKey" in config) == ("anyOf" in config):
            problems.append(Problem(["config"], "give exactly one of eventKey or anyOf"))
        if "anyOf" in config and not _templated(config["anyOf"]):
            keys = config["anyOf"]
            if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_ANY_OF:
                problems.append(
                    Problem(["config", "anyOf"], f"must be a list of 1 to {MAX_ANY_OF} keys")
                )
        timeout = config.get("timeoutSecs", DEFAULT_TIMEOUT_SECS)
        if not _templated(timeout) and _seconds(timeout) is None:
            problems.append(
                Problem(["config", "timeoutSecs"], "must be a number of seconds, up to 366 days")
            )
        on_timeout = config.get("onTimeout", "fail")
        if on_timeout not in ("fail", "continue"):
            problems.append(Problem(["config", "onTimeout"], "must be fail or continue"))
        if "timeoutOutput" in config and on_timeout != "continue":
            problems.append(
                Problem(["config", "timeoutOutput"], "is used only with onTimeout: continue")
            )
        return problems

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        assert isinstance(config, dict)  # noqa: S101 - check() guarantees it
        if ctx.events is None:
            raise StepFailure("Event waits are not available in this process")
        state = ctx.state if isinstance(ctx.state, dict) else {}
        opened = state.get("triggers")
        if not isinstance(opened, list):
            raise _open(config, ctx)
        trigger_ids = [str(item) for item in opened]
        triggers = await ctx.events.triggers(ctx.project_id, trigger_ids)
        expires = parse_until(state.get("expiresAt"))
        if expires is None:
            raise StepFailure("The wait's saved state has no expiry; it cannot resume")
        waiting = [t for t in triggers if t["status"] == "waiting"]
        if waiting and ctx.clock.now() >= expires:
            triggers = await ctx.events.expire(ctx.project_id, trigger_ids)
        return _outcome(triggers, state, expires)


def _open(config: JSONObject, ctx: StepContext) -> StepWait:
    """The StepWait that opens this step's triggers. Raises StepFailure for bad keys."""
    any_of = "anyOf" in config
    keys = config["anyOf"] if any_of else [config.get("eventKey")]
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_ANY_OF:
        raise StepFailure(f"anyOf must be a list of 1 to {MAX_ANY_OF} keys, not {keys!r}")
    for key in keys:
        problem = key_problem(key)
        if problem is not None:
            raise StepFailure(f"Event key {key!r} {problem}")
    if len(set(keys)) != len(keys):
        raise StepFailure("anyOf lists the same event key twice")
    seconds = _seconds(config.get("timeoutSecs", DEFAULT_TIMEOUT_SECS))
    if seconds is None:
        raise StepFailure(f"timeoutSecs must be a number of seconds: {config.get('timeoutSecs')!r}")
    expires = ctx.clock.now() + timedelta(seconds=seconds)
    waits = tuple(
        EventWait(
            id=ids.new_id("evt"),
            key=str(key),
            payload=config.get("payload"),
            timeout_secs=seconds,
            expires_at=expires,
            any_of=any_of,
        )
        for key in keys
    )
    state: JSONObject = {
        "triggers": [wait.id for wait in waits],
        "expiresAt": clock.to_wire(expires),
        "onTimeout": config.get("onTimeout", "fail"),
        "timeoutOutput": config.get("timeoutOutput"),
    }
    return StepWait(until=expires, state=state, events=waits)


def _outcome(triggers: list[JSONObject], state: JSONObject, expires_at: datetime) -> JSON:
    """The step's output once an event came; raises StepWait while one may still come, and
    StepFailure (``canceled`` or ``timed_out``) when none will."""
    for trigger in triggers:
        if trigger["status"] == "received":
            payload = trigger["response_payload"]
            any_of = bool(trigger.get("any_of"))
            return {"key": trigger["event_key"], "payload": payload} if any_of else payload
    if any(trigger["status"] == "waiting" for trigger in triggers):
        raise StepWait(until=expires_at, state=state)
    keys = ", ".join(repr(trigger["event_key"]) for trigger in triggers)
    if all(trigger["status"] == "canceled" for trigger in triggers):
        raise StepFailure(f"The wait for {keys} was canceled", code="CANCELED", status="canceled")
    if state.get("onTimeout") == "continue":
        return state.get("timeoutOutput")
    raise StepFailure(
        f"No event was sent to {keys} before the wait timed out",
        code="STEP_TIMEOUT",
        status="timed_out",
    )


def _seconds(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if 0 < value <= MAX_TIMEOUT_SECS else None
