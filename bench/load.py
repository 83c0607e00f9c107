"""Load generation: what to send (``LoadSpec``), what came back (``LoadResult``).

The load always runs outside this process, so the harness and the load never share a core's
time slice with each other: the Python generator in a ``multiprocessing`` child, or ``wrk``.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import httpx

CHILD_GRACE_SECS = 60.0
"""Beyond the measured duration, how long a load child may take before it is killed."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """One request, repeated on ``connections`` keep-alive connections for ``seconds``."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    connections: int
    seconds: float
    idempotency_half: bool = False
    """Every second request carries a fresh ``Idempotency-Key`` (unique across runs)."""
    max_requests: int | None = None
    """Stop after this many requests were sent (before ``seconds`` runs out); Python only."""


IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What one load run measured. ``errors`` = non-2xx + transport errors + timeouts."""

    generator: str
    seconds: float
    """Wall time from the first request to the last answer."""
    requests: int
    """Responses received, whatever their status."""
    ok: int
    """2xx responses."""
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[str, int]
    """Count per HTTP status, plus ``transport`` and ``timeout`` where any."""
    generator_cpu: float | None = None
    """The generator's CPU time / wall time; near 1.0 means it, not the server, was the limit."""

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rate": self.rate}


def measure(spec: LoadSpec, *, generator: str) -> LoadResult:
    """Run ``spec`` with ``generator`` (``python`` or ``wrk``) and return what it measured."""
    if generator == "wrk" and spec.max_requests is None:
        from bench import load_wrk

        return load_wrk.run(spec)
    from bench import load_python

    return run_in_child(load_python.run, spec, timeout=spec.seconds + CHILD_GRACE_SECS)


def warm_up(spec: LoadSpec, *, requests: int = 100) -> None:
    """A few sequential requests first: connections, caches and lazy imports are warm."""
    with httpx.Client(timeout=60.0) as client:
        for n in range(requests):
            headers = dict(spec.headers)
            if spec.idempotency_half and n % 2:
                headers[IDEMPOTENCY_HEADER] = f"warm-{uuid.uuid4().hex}"
            response = client.request(spec.method, spec.url, headers=headers, content=spec.body)
            if not response.is_success:
                raise RuntimeError(
                    f"warm-up {spec.method} {spec.url} → {response.status_code}: "
                    f"{response.text[:500]}"
                )


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0…100) of an ascending list; ``None`` when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def run_in_child(fn: Callable[[T], R], arg: T, *, timeout: float) -> R:
    """``fn(arg)`` in a fresh (spawned) process; killed if it outlives ``timeout``."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(fn, arg, sender), name="bench-load", daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"load child gave no result within {timeout:.0f} s")
        ok, payload = receiver.recv()
    except EOFError as exc:
        child.join(1.0)
        raise RuntimeError(f"load child died without a result (exit {child.exitcode})") from exc
    finally:
        receiver.close()
        _stop_child(child)
    if not ok:
        raise RuntimeError(f"load child failed:\n{payload}")
    return payload  # type: ignore[no-any-return]  # the child sends fn's return value


def _child_main(fn: Callable[[T], R], arg: T, sender: Connection) -> None:
    # The parent owns Ctrl-C: it stops this child, so no second traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sender.send((True, fn(arg)))
    except Exception:
        sender.send((False, traceback.format_exc()))
    finally:
        sender.close()


def _stop_child(child: BaseProcess) -> None:
    child.join(1.0)  # after a result it exits at once; after Ctrl-C or a timeout it is stopped
    if child.is_alive():
        child.terminate()
        child.join(5.0)
    if child.is_alive():
        child.kill()
        child.join()
