"""Workflow definitions: checked when written, compiled once per version for running.

``check_definition`` lists every problem it finds (never stops at the first) so that the API can
answer one 400 naming them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flowgate.engine.retry import NO_RETRY, RetryPolicy, check_retry, policy_for
from flowgate.engine.schema import InputValidator, check_schema
from flowgate.engine.steps import CheckContext, Problem, StepType
from flowgate.engine.templating import TemplateEngine
from flowgate.types import JSON, JSONObject

STEP_ID = re.compile(r"\A[A-Za-z0-9_-]{1,200}\Z")
#: Only the trigger types that start runs today; ``webhook`` and ``schedule`` join when they do.
TRIGGER_TYPES = ("api", "webhook", "schedule")


def unsupported_trigger(kind: JSON) -> str | None:
    """Why ``kind`` cannot be a trigger's type, or None: the one message the definition check and
    the triggers API give."""
    if kind in TRIGGER_TYPES:
        return None
    return f"unsupported trigger type {kind!r}; supported: {', '.join(TRIGGER_TYPES)}"


_TOP_LEVEL_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "description": (str, type(None)),
    "trigger": (dict, list, type(None)),
    "inputSchema": (dict, bool, type(None)),
    "steps": (list,),
    "concurrency": (dict, type(None)),
    "env": (dict, type(None)),
    "timeoutSecs": (int, float, type(None)),
    "retry": (dict, type(None)),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StepDef:
    id: str
    type: str
    name: str | None
    config: JSON
    condition: str | None
    continue_on_error: bool
    connection_id: str | None
    retry: RetryPolicy = NO_RETRY
    timeout_secs: float | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Concurrency:
    """``concurrency: {limit, key, totalLimit}``: ``limit`` per value of the rendered ``key``
    (the whole workflow without a key), ``totalLimit`` over all keys together."""

    limit: int | None = None
    key: str | None = None
    total_limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledWorkflow:
    """One version of a workflow, ready to validate input and run."""

    workflow_id: str
    version: int
    name: str
    steps: tuple[StepDef, ...]
    validator: InputValidator
    env: dict[str, str]
    output: JSON
    has_output: bool
    timeout_secs: float | None = None
    concurrency: Concurrency | None = None


class DefinitionChecker:
    """Checks definitions against the registered step types and the template syntax."""

    def __init__(
        self, *, step_types: dict[str, StepType], templates: TemplateEngine, ctx: CheckContext
    ) -> None:
        self._step_types = step_types
        self._templates = templates
        self._ctx = ctx

    def check(self, definition: JSONObject) -> list[Problem]:
        problems = self._check_top_level(definition)
        steps = definition.get("steps")
        if isinstance(steps, list):
            problems += self._check_steps(steps)
            known = {
                str(s["id"]) for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)
            }
            problems += self._check_references(definition, known)
        if "output" in definition:
            problems += self._template_problems(definition["output"], ["output"])
        return problems

    def _check_top_level(self, definition: JSONObject) -> list[Problem]:
        problems = []
        for key, types in _TOP_LEVEL_TYPES.items():
            if key in definition and not isinstance(definition[key], types):
                problems.append(
                    Problem([key], f"has the wrong type ({_json_type(definition[key])})")
                )
        name = definition.get("name")
        if "name" not in definition:
            problems.append(Problem(["name"], "Required"))
        elif isinstance(name, str) and not 1 <= len(name) <= 500:
            problems.append(Problem(["name"], "must be 1 to 500 characters"))
        if "steps" not in definition:
            problems.append(Problem(["steps"], "Required"))
        problems += self._check_trigger(definition.get("trigger"))
        schema = definition.get("inputSchema")
        if isinstance(schema, dict | bool):
            problems += [Problem(["inputSchema", *p.path], p.message) for p in check_schema(schema)]
        env = definition.get("env")
        if isinstance(env, dict):
            for key, value in env.items():
                if not isinstance(value, str | int | float | bool) or value is None:
                    problems.append(Problem(["env", key], "env values must be strings or numbers"))
        problems += _timeout_problems(definition, ["timeoutSecs"])
        problems += self._check_concurrency(definition.get("concurrency"))
        if definition.get("retry") is not None:
            problems += [
                Problem(["retry", *path], message)
                for path, message in check_retry(definition["retry"])
            ]
        return problems

    def _check_concurrency(self, value: JSON) -> list[Problem]:
        if not isinstance(value, dict):
            return []
        problems = []
        for name in ("limit", "totalLimit"):
            limit = value.get(name)
            if name in value and not (
                isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 100_000
            ):
                problems.append(Problem(["concurrency", name], "must be an integer from 1"))
        if "key" in value and not isinstance(value["key"], str):
            problems.append(Problem(["concurrency", "key"], "must be a template string"))
        elif "key" in value:
            problems += self._template_problems(value["key"], ["concurrency", "key"])
        if not ({"limit", "totalLimit"} & set(value)):
            problems.append(Problem(["concurrency"], "needs limit or totalLimit"))
        return problems

    def _check_trigger(self, trigger: JSON) -> list[Problem]:
        triggers = trigger if isinstance(trigger, list) else [trigger] if trigger else []
        problems = []
        for index, item in enumerate(triggers):
            path: list[str | int] = ["trigger", index] if isinstance(trigger, list) else ["trigger"]
            kind = item.get("type") if isinstance(item, dict) else None
            message = unsupported_trigger(kind)
            if message is not None:
                problems.append(Problem([*path, "type"], message))
        return problems

    def _check_steps(self, steps: list[JSON]) -> list[Problem]:
        problems: list[Problem] = []
        if not steps:
            problems.append(Problem(["steps"], "a workflow needs at least one step"))
        seen: set[str] = set()
        for index, step in enumerate(steps):
            path: list[str | int] = ["steps", index]
            if not isinstance(step, dict):
                problems.append(Problem(path, "each step must be an object"))
                continue
            problems += [Problem([*path, *p.path], p.message) for p in self._check_step(step, seen)]
        return problems

    def _check_step(self, step: JSONObject, seen: set[str]) -> list[Problem]:
        problems = []
        step_id = step.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id):
            problems.append(Problem(["id"], "step ids are 1-200 characters of [A-Za-z0-9_-]"))
        elif step_id in seen:
            problems.append(Problem(["id"], f"duplicate step id {step_id!r}"))
        else:
            seen.add(step_id)
        for key in ("name", "description", "connectionId"):
            if key in step and not isinstance(step[key], str | None):
                problems.append(Problem([key], "must be a string"))
        if "continueOnError" in step and not isinstance(step["continueOnError"], bool):
            problems.append(Problem(["continueOnError"], "must be true or false"))
        problems += _timeout_problems(step, ["timeoutSecs"])
        if step.get("retry") is not None:
            problems += [
                Problem(["retry", *path], message) for path, message in check_retry(step["retry"])
            ]
        if "config" in step and not isinstance(step["config"], dict):
            problems.append(Problem(["config"], "must be an object"))
        condition = step.get("if")
        if condition is not None:
            message = (
                self._templates.check_condition(condition)
                if isinstance(condition, str)
                else "must be a string"
            )
            if message:
                problems.append(Problem(["if"], message))
        step_type = self._step_types.get(str(step.get("type")))
        if step_type is None:
            known = ", ".join(sorted(self._step_types))
            problems.append(Problem(["type"], f"Unknown step type {step.get('type')!r} ({known})"))
        else:
            problems += step_type.check(step, self._ctx)
        problems += self._template_problems(step.get("config"), ["config"])
        return problems

    def _template_problems(self, value: JSON, path: list[str | int]) -> list[Problem]:
        return [
            Problem(
                [*path, *p.path],
                f"Template {'syntax ' if p.syntax else ''}error in {p.expression!r}: {p.message}",
            )
            for p in self._templates.check(value)
        ]

    def _check_references(self, definition: JSONObject, known: set[str]) -> list[Problem]:
        problems = []
        steps = definition.get("steps")
        assert isinstance(steps, list)  # noqa: S101 - the caller checked
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            used = self._templates.referenced_steps(step.get("config"))
            condition = step.get("if")
            if isinstance(condition, str):
                used |= self._templates.referenced_steps(condition)
            for missing in sorted(used - known):
                problems.append(Problem(["steps", index], f"refers to unknown step {missing!r}"))
        for missing in sorted(self._templates.referenced_steps(definition.get("output")) - known):
            problems.append(Problem(["output"], f"refers to unknown step {missing!r}"))
        return problems


def _timeout_problems(block: JSONObject, path: list[str | int]) -> list[Problem]:
    timeout = block.get("timeoutSecs")
    if timeout is None:
        return []
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return [Problem(path, "must be a number of seconds")]
    if not 0 < timeout <= 31_622_400:
        return [Problem(path, "must be greater than 0 and at most 366 days")]
    return []


def compile_workflow(workflow_id: str, version: int, definition: JSONObject) -> CompiledWorkflow:
    """Build the runnable form of a checked definition."""
    raw_steps: list[Any] = list(definition.get("steps") or [])  # type: ignore[arg-type]
    workflow_retry = definition.get("retry")
    steps = tuple(
        StepDef(
            id=step["id"],
            type=step["type"],
            name=step.get("name"),
            config=step.get("config", {}),
            condition=step.get("if"),
            continue_on_error=bool(step.get("continueOnError", False)),
            connection_id=step.get("connectionId"),
            retry=policy_for(step.get("retry"), workflow_retry),
            timeout_secs=step.get("timeoutSecs"),
            action=step.get("action"),
        )
        for step in raw_steps
    )
    env_defaults = definition.get("env") or {}
    assert isinstance(env_defaults, dict)  # noqa: S101 - checked at write time
    schema = definition.get("inputSchema")
    return CompiledWorkflow(
        workflow_id=workflow_id,
        version=version,
        name=str(definition.get("name", "")),
        steps=steps,
        validator=InputValidator(schema if isinstance(schema, dict | bool) else None),
        env={key: _env_text(value) for key, value in env_defaults.items()},
        output=definition.get("output"),
        has_output="output" in definition,
        timeout_secs=_number_or_none(definition.get("timeoutSecs")),
        concurrency=_concurrency(definition.get("concurrency")),
    )


def _concurrency(value: JSON) -> Concurrency | None:
    if not isinstance(value, dict):
        return None
    limit, total, key = value.get("limit"), value.get("totalLimit"), value.get("key")
    return Concurrency(
        limit=limit if isinstance(limit, int) else None,
        key=key if isinstance(key, str) else None,
        total_limit=total if isinstance(total, int) else None,
    )


def _number_or_none(value: JSON) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _env_text(value: JSON) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
