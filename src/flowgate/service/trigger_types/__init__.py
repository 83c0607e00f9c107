"""Trigger types are plug-ins: one module each, registered by name with ``@register_trigger``.

A type is accepted only when its name is also in ``engine.definition.TRIGGER_TYPES``, the one
list that the definition check and the triggers API share: enabling ``webhook`` or ``schedule``
is that one edit plus the type's module (listed in ``_MODULES``).

The create body (DESIGN §3 "Shapes pinned down") and an item of a document's ``trigger:`` field
have the same shape, so both go through ``parse_spec`` and ``build_trigger``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, TypeVar

from flowgate import ids
from flowgate.engine import definition
from flowgate.engine.steps import Problem
from flowgate.service.core import Services
from flowgate.store.base import TriggerRow
from flowgate.types import JSON, JSONObject

#: Fields of the create body beside ``type`` and ``name``; a type takes those in its ``fields``
#: and refuses the others, so a ``cron`` on an ``api`` trigger is a 400, not silently dropped.
SPEC_FIELDS = ("signatureStyle", "signingSecret", "cron", "timezone", "input", "catchUp")
_MODULES = ("api", "webhook", "schedule")


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    """A trigger as sent: the API's create body or one item of a document's ``trigger:``."""

    type: str
    name: str | None = None
    #: The ``SPEC_FIELDS`` that were sent, except ``signingSecret``, which is never kept in clear.
    config: JSONObject
    signing_secret: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerView:
    """A stored trigger with what its reply needs beside the row."""

    row: TriggerRow
    url: str | None = None
    #: The signing secret in clear: only in the reply that created it.
    signing_secret: str | None = None


class TriggerType:
    """What a type decides: which fields it takes, their checks, the columns it fills."""

    fields: ClassVar[frozenset[str]] = frozenset()

    def check(self, spec: TriggerSpec) -> list[Problem]:
        """Problems with the ``fields`` this type takes (paths relative to the trigger)."""
        return []

    def build(
        self, svc: Services, spec: TriggerSpec, row: TriggerRow, *, previous: TriggerRow | None
    ) -> TriggerView:
        """Fill the type's columns (``token``, ``signing_secret_encrypted``, ``next_run_at``).
        ``previous`` is the trigger this one replaces on a definition change (same id), if any."""
        return TriggerView(row=row, url=self.url(svc, row))

    def url(self, svc: Services, row: TriggerRow) -> str | None:
        """Where this trigger is called, for types that have an address of their own."""
        return None


TRIGGER_HANDLERS: dict[str, TriggerType] = {}
T = TypeVar("T", bound=type[TriggerType])


def register_trigger(name: str) -> Callable[[T], T]:
    def register(cls: T) -> T:
        if name in TRIGGER_HANDLERS:
            raise ValueError(f"trigger type {name!r} is registered twice")
        TRIGGER_HANDLERS[name] = cls()
        return cls

    return register


def parse_spec(
    item: JSON, path: Sequence[str | int] = ()
) -> tuple[TriggerSpec | None, list[Problem]]:
    """The spec in ``item``, or every problem with it (paths start with ``path``)."""
    if not isinstance(item, dict):
        return None, [Problem(list(path), "each trigger must be an object")]
    kind = item.get("type")
    message = definition.unsupported_trigger(kind)
    if message is not None or not isinstance(kind, str):
        return None, [Problem([*path, "type"], message or "Required")]
    handler = TRIGGER_HANDLERS[kind]
    problems = []
    name = item.get("name")
    if name is not None and not (isinstance(name, str) and 1 <= len(name) <= 200):
        problems.append(Problem([*path, "name"], "must be a string of 1 to 200 characters"))
    for field in SPEC_FIELDS:
        if field in item and field not in handler.fields:
            problems.append(Problem([*path, field], f"not used by {kind} triggers"))
    secret = item.get("signingSecret")
    spec = TriggerSpec(
        type=kind,
        name=name if isinstance(name, str) else None,
        config={k: item[k] for k in SPEC_FIELDS if k in item and k != "signingSecret"},
        signing_secret=secret if isinstance(secret, str) else None,
    )
    problems += [Problem([*path, *p.path], p.message) for p in handler.check(spec)]
    return (None, problems) if problems else (spec, [])


def build_trigger(
    svc: Services,
    spec: TriggerSpec,
    *,
    project_id: str,
    workflow_id: str,
    source: str,
    now: datetime,
    previous: TriggerRow | None = None,
) -> TriggerView:
    """A new row for ``spec``; one replacing ``previous`` keeps its id, address and secret."""
    row = TriggerRow(
        id=ids.new_id("trg"),
        project_id=project_id,
        workflow_id=workflow_id,
        type=spec.type,
        name=spec.name,
        enabled=True,
        source=source,
        config=spec.config,
        token=None,
        signing_secret_encrypted=None,
        created_at=now,
        updated_at=now,
        next_run_at=None,
    )
    if previous is not None:
        row["id"], row["enabled"], row["created_at"] = (
            previous["id"],
            previous["enabled"],
            previous["created_at"],
        )
        row["token"], row["signing_secret_encrypted"], row["next_run_at"] = (
            previous["token"],
            previous["signing_secret_encrypted"],
            previous["next_run_at"],
        )
    return TRIGGER_HANDLERS[spec.type].build(svc, spec, row, previous=previous)


for _module in _MODULES:
    importlib.import_module(f"flowgate.service.trigger_types.{_module}")
# A type the definition check accepts must have its module here, or parse_spec would fail on it.
_missing = set(definition.TRIGGER_TYPES) - set(TRIGGER_HANDLERS)
if _missing:
    raise RuntimeError(f"trigger types without a module: {sorted(_missing)}")
