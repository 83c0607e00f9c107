"""Actions: named operations that ``action`` steps call (``stripe.createInvoice``, ``email.send``).

Built-ins are one module each, registered with ``@register_action``; operators add more through
the ``flowgate.actions`` entry-point group (each entry point: an object with ``run`` and, if it
uses a connection type, ``provider``). Loaded once at start-up; a duplicate name raises.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import ClassVar, Protocol, TypeVar

from flowgate.engine.steps import StepContext
from flowgate.types import JSON, JSONObject


class Action(Protocol):
    #: The connection type it uses (``stripe``, ``smtp``, …), or None.
    provider: ClassVar[str | None]

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        """Do it with the rendered ``config``; raise StepFailure to fail the attempt."""


ACTIONS: dict[str, Action] = {}
_BUILT_IN = ("email", "http_request", "slack", "stripe")
A = TypeVar("A")


def register_action(name: str) -> Callable[[type[A]], type[A]]:
    def decorate(cls: type[A]) -> type[A]:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} is registered twice")
        ACTIONS[name] = cls()  # type: ignore[assignment]
        return cls

    return decorate


def load_actions() -> dict[str, Action]:
    """Import the built-in actions and the ``flowgate.actions`` entry points, once."""
    for module in _BUILT_IN:
        importlib.import_module(f"flowgate.engine.actions.{module}")
    for entry in entry_points(group="flowgate.actions"):
        loaded = entry.load()
        if ACTIONS.get(entry.name, loaded) is not loaded:
            raise ValueError(f"action {entry.name!r} is registered twice")
        ACTIONS[entry.name] = loaded
    return ACTIONS
