"""The Python load generator: keep-alive HTTP/1.1 on raw asyncio streams (uvloop when present).

httpx costs too much CPU per request to load a uvicorn server from one core; writing the
prepared request bytes and parsing answers with httptools (uvicorn's own parser) does not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from bench.load import IDEMPOTENCY_HEADER, LoadResult, LoadSpec, percentile

GRACE_SECS = 10.0
"""After the duration, how long answers to requests already sent are awaited (then: timeout)."""
_READ_SIZE = 65536
_RECONNECT_PAUSE_SECS = 0.05


@dataclass(slots=True)
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    sent: int = 0
    max_requests: int | None = None

    def may_send(self) -> bool:
        return self.max_requests is None or self.sent < self.max_requests


class _Requests:
    """The bytes of each request: fixed, or with a fresh ``Idempotency-Key`` every second one."""

    __slots__ = ("_head", "_keyed", "_n", "_plain", "_prefix")

    def __init__(self, spec: LoadSpec) -> None:
        self._plain = request_bytes(spec)
        self._keyed = spec.idempotency_half
        head, _, _ = self._plain.partition(b"\r\n")
        self._head = head + b"\r\n"
        self._prefix = f"{IDEMPOTENCY_HEADER}: {uuid.uuid4().hex}-".encode()
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        if not self._keyed or self._n % 2:
            return self._plain
        rest = self._plain[len(self._head) :]
        return self._head + self._prefix + str(self._n).encode() + b"\r\n" + rest


class _Answer:
    """httptools callback target: only whether the current response is complete."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def run(spec: LoadSpec) -> LoadResult:
    """Entry point in the load child: drive ``spec`` and tally the answers."""
    loop_factory = _loop_factory()
    cpu_start = time.process_time()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        tally, elapsed = runner.run(_drive(spec))
    cpu = time.process_time() - cpu_start
    return _result(tally, elapsed, cpu)


def request_bytes(spec: LoadSpec) -> bytes:
    parts = urlsplit(spec.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{spec.method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    lines.append(f"Content-Length: {len(spec.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body


async def _drive(spec: LoadSpec) -> tuple[_Tally, float]:
    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _Requests(spec)
    tally = _Tally(max_requests=spec.max_requests)
    start = time.perf_counter()
    deadline = start + spec.seconds
    tasks = [
        asyncio.create_task(_connection(host, port, request, deadline, tally), name=f"conn-{i}")
        for i in range(spec.connections)
    ]
    done, pending = await asyncio.wait(tasks, timeout=spec.seconds + GRACE_SECS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # a bug in the generator must not pass as a figure
    tally.statuses["timeout"] += tally.in_flight
    return tally, time.perf_counter() - start


async def _connection(
    host: str, port: int, request: _Requests, deadline: float, tally: _Tally
) -> None:
    """One client connection; reconnects when the server closes it or a transport error hits."""
    while time.perf_counter() < deadline and tally.may_send():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            tally.statuses["transport"] += 1
            await asyncio.sleep(_RECONNECT_PAUSE_SECS)  # refused: back off, do not spin
            continue
        try:
            await _exchange_until(reader, writer, request, deadline, tally)
        except (OSError, EOFError, httptools.HttpParserError):
            tally.in_flight -= 1
            tally.statuses["transport"] += 1
        finally:
            writer.close()


async def _exchange_until(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: _Requests,
    deadline: float,
    tally: _Tally,
) -> None:
    """Request after request on one connection until the deadline or the server closes it."""
    answer = _Answer()
    parser = httptools.HttpResponseParser(answer)
    now = time.perf_counter
    while (sent := now()) < deadline and tally.may_send():
        answer.complete = False
        tally.in_flight += 1
        tally.sent += 1
        writer.write(request.next())
        while not answer.complete:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise EOFError("server closed the connection mid-response")
            parser.feed_data(data)
        tally.in_flight -= 1
        tally.latencies.append(now() - sent)
        tally.statuses[str(parser.get_status_code())] += 1
        if not parser.should_keep_alive():
            return


def _result(tally: _Tally, elapsed: float, cpu: float) -> LoadResult:
    statuses = {k: v for k, v in sorted(tally.statuses.items()) if v}
    ok = sum(v for k, v in statuses.items() if k.isdigit() and 200 <= int(k) < 300)
    latencies = sorted(tally.latencies)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return LoadResult(
        generator="python",
        seconds=elapsed,
        requests=len(latencies),
        ok=ok,
        errors=sum(statuses.values()) - ok,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        statuses=statuses,
        generator_cpu=cpu / elapsed if elapsed > 0 else None,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
