"""Functions the test server registers for ``python`` steps (FLOWGATE_PYTHON_MODULES)."""

from __future__ import annotations

import threading
from typing import Any

GATE = threading.Event()
ENTERED = threading.Event()
CALLS: list[tuple[str, str]] = []


def add(config: dict[str, Any], context: Any) -> dict[str, Any]:
    CALLS.append((context.run_id, context.step_id))
    return {"sum": config["a"] + config["b"], "key": context.idempotency_key}


async def shout(config: dict[str, Any], context: Any) -> str:
    return str(config["text"]).upper()


def wait_for_gate(config: dict[str, Any], context: Any) -> str:
    """Blocks (in a worker thread) until the test opens the gate."""
    ENTERED.set()
    GATE.wait(10)
    return "through"


def explode(config: dict[str, Any], context: Any) -> None:
    raise RuntimeError("kaboom")


def not_json(config: dict[str, Any], context: Any) -> object:
    return {1, 2}


FLAKY: dict[str, int] = {}


def fail_twice(config: dict[str, Any], context: Any) -> dict[str, int]:
    """Fails on the first two attempts (counted per config key), then succeeds."""
    count = FLAKY.get(config["key"], 0) + 1
    FLAKY[config["key"]] = count
    if count < 3:
        raise RuntimeError(f"attempt {count} failed")
    return {"attempts": context.attempt}


async def slow(config: dict[str, Any], context: Any) -> str:
    import asyncio

    await asyncio.sleep(30)
    return "never"


def fail_with(config: dict[str, Any], context: Any) -> None:
    """Fails with the message it is given (a rendered template)."""
    raise RuntimeError(f"upstream refused: {config['message']}")


def with_nul(config: dict[str, Any], context: Any) -> dict[str, str]:
    """Returns text holding U+0000, which PostgreSQL cannot store in JSON."""
    CALLS.append((context.run_id, context.step_id))
    return {"text": "a\x00b"}


def own_timeout(config: dict[str, Any], context: Any) -> None:
    """A call inside the step timed out (a socket, say): the step's failure, not STEP_TIMEOUT."""
    raise TimeoutError("socket timed out")
