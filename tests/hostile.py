"""A live ``flowgate serve`` process watched while one hostile request is handled (DESIGN §7
"Limits and rules pinned down"): the answer, the time it took, the worst ``/healthz`` latency
meanwhile (polled every 50 ms from a thread with its own client) and the growth of the process's
RSS (``VmRSS``/``VmHWM`` of ``/proc/<pid>/status``, sampled every 50 ms)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import ADMIN_KEY
from tests.pg import free_port

FLOWGATE = str(Path(sys.executable).parent / "flowgate")
HEALTHZ_INTERVAL_SECS = 0.05
#: A poll slower than this is given up and counted as this slow (then polling goes on).
HEALTHZ_TIMEOUT_SECS = 2.0
#: DESIGN §7: no request may make ``/healthz`` answer slower than 1 s while it is handled.
HEALTHZ_LIMIT_MS = 1000.0
#: The server is SIGKILLed beyond this RSS, so that a bomb cannot take the shared machine down.
MEMORY_GUARD_MB = 1500
#: Backstop for the same: the server's address space (``prlimit --as``).
ADDRESS_SPACE_BYTES = 8 * 1024**3
SERVER_ENV = {
    "FLOWGATE_WORKERS": "2",
    "FLOWGATE_LEASE_SECS": "5",
    "FLOWGATE_POLL_INTERVAL_SECS": "0.5",
    "FLOWGATE_MAX_WAIT_SECS": "15",
    "FLOWGATE_HTTP_TIMEOUT_SECS": "2",
    "FLOWGATE_HTTP_ALLOW_PRIVATE": "1",
    "FLOWGATE_LOG_LEVEL": "warning",
    "FLOWGATE_LOG_FORMAT": "json",
}


def _status_kb(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class LiveServer:
    """``flowgate serve`` as a subprocess on a free loopback port, with an RSS guard thread."""

    def __init__(self, database_url: str, directory: Path, **env: str) -> None:
        self.database_url = database_url
        self.database = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        self.directory = directory
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "flowgate-serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_for_memory = False
        self.warm_run_id = ""  # a finished run, set by whoever warms the server up
        self._peak_kb = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._guard = threading.Thread(target=self._sample, name="rss-guard", daemon=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> LiveServer:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
        env = {
            **inherited,
            **SERVER_ENV,
            "FLOWGATE_DATABASE_URL": self.database_url,
            "FLOWGATE_PORT": str(self.port),
            "FLOWGATE_ADMIN_KEY": ADMIN_KEY,
            "FLOWGATE_DATA_DIR": str(self.directory / "data"),
            **self.env,
        }
        with open(self.log_path, "wb") as log:
            # prlimit sets the limit on itself, then execs: the pid is the server's.
            self.process = subprocess.Popen(
                ["prlimit", f"--as={ADDRESS_SPACE_BYTES}", FLOWGATE, "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._guard.start()
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"flowgate serve exited at start:\n{self.log_tail()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"flowgate serve did not answer /healthz in 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._guard.join(2)

    def client(self, key: str = ADMIN_KEY, timeout: float = 15) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key}, timeout=timeout)

    def rss_kb(self) -> int:
        return _status_kb(self.pid, "VmRSS") or 0

    def hwm_kb(self) -> int:
        return _status_kb(self.pid, "VmHWM") or 0

    def reset_peak(self) -> int:
        with self._lock:
            self._peak_kb = self.rss_kb()
            return self._peak_kb

    def peak_kb(self) -> int:
        with self._lock:
            return max(self._peak_kb, self.rss_kb())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _sample(self) -> None:
        while not self._stop.wait(HEALTHZ_INTERVAL_SECS):
            if not self.alive():
                return
            rss = self.rss_kb()
            with self._lock:
                self._peak_kb = max(self._peak_kb, rss)
            if rss > MEMORY_GUARD_MB * 1024 and self.process is not None:
                self.killed_for_memory = True
                self.process.kill()
                return


@dataclass
class Figures:
    """One row of the closing table."""

    name: str
    status: str
    seconds: float
    healthz_ms: float
    healthz_failures: int
    rss_delta_mb: float
    rss_bound_mb: float


FIGURES: list[Figures] = []


@dataclass
class Case:
    """One hostile request against a :class:`LiveServer`, watched while it runs.

    ``send`` does the request; a transport error (a timeout included) leaves ``response`` None
    and ``failure`` saying why.
    """

    server: LiveServer
    name: str
    rss_bound_mb: float
    response: httpx.Response | None = None
    failure: str | None = None
    seconds: float = 0.0
    healthz_ms: float = 0.0
    healthz_failures: int = 0
    rss_delta_mb: float = 0.0
    _worst: float = 0.0
    _inflight: float | None = None
    _started: float = 0.0
    _rss_before: int = 0
    _hwm_before: int = 0
    _poller: threading.Thread | None = None
    _completed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)

    def run(self, send: Callable[[], httpx.Response]) -> Case:
        with self:
            try:
                self.response = send()
            except httpx.HTTPError as exc:
                self.failure = f"{type(exc).__name__}: {exc}"
        return self

    def __enter__(self) -> Case:
        self._rss_before = self.server.reset_peak()
        self._hwm_before = self.server.hwm_kb()
        self._poller = threading.Thread(target=self._poll, name="healthz-poller", daemon=True)
        self._poller.start()
        # The poller's client is built and connected first: its set-up is not the server's time.
        self._ready.wait(HEALTHZ_TIMEOUT_SECS + 1)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds = time.perf_counter() - self._started
        # A request faster than one poll still gets one /healthz answer timed (begun with it).
        deadline = time.perf_counter() + HEALTHZ_TIMEOUT_SECS + 0.5
        while self._completed == 0 and self._poller_alive() and time.perf_counter() < deadline:
            time.sleep(0.005)
        self._stop.set()
        inflight = self._inflight
        worst = self._worst
        if inflight is not None:
            worst = max(worst, time.perf_counter() - inflight)
        if self._poller is not None:
            self._poller.join(HEALTHZ_TIMEOUT_SECS + 1)
        self.healthz_ms = max(worst, self._worst) * 1000
        peak = self.server.peak_kb()
        hwm = self.server.hwm_kb()
        if hwm > self._hwm_before:
            peak = max(peak, hwm)
        self.rss_delta_mb = max(peak - self._rss_before, 0) / 1024
        FIGURES.append(
            Figures(
                name=self.name,
                status=self.status,
                seconds=self.seconds,
                healthz_ms=self.healthz_ms,
                healthz_failures=self.healthz_failures,
                rss_delta_mb=self.rss_delta_mb,
                rss_bound_mb=self.rss_bound_mb,
            )
        )

    @property
    def status(self) -> str:
        if self.server.killed_for_memory:
            return f"killed (RSS > {MEMORY_GUARD_MB} MB)"
        if self.response is not None:
            return str(self.response.status_code)
        return self.failure or "no answer"

    def answer(self) -> httpx.Response:
        """The response; fails the test, saying why, if there was none."""
        assert not self.server.killed_for_memory, (
            f"{self.name}: server SIGKILLed by the guard, RSS over {MEMORY_GUARD_MB} MB"
        )
        assert self.response is not None, (
            f"{self.name}: no answer after {self.seconds:.1f} s ({self.failure}); "
            f"server log:\n{self.server.log_tail()}"
        )
        return self.response

    def assert_unharmed(self) -> None:
        """DESIGN §7: /healthz under 1 s throughout, and bounded memory growth."""
        assert self.server.alive(), f"{self.name}: the server died:\n{self.server.log_tail()}"
        assert self.healthz_failures == 0, f"{self.name}: {self.healthz_failures} /healthz failures"
        assert self.healthz_ms < HEALTHZ_LIMIT_MS, (
            f"{self.name}: worst /healthz {self.healthz_ms:.0f} ms while handled"
        )
        assert self.rss_delta_mb < self.rss_bound_mb, (
            f"{self.name}: RSS grew {self.rss_delta_mb:.1f} MB (bound {self.rss_bound_mb} MB)"
        )

    def _poller_alive(self) -> bool:
        return self._poller is not None and self._poller.is_alive()

    def _poll(self) -> None:
        try:
            with httpx.Client(base_url=self.server.url, timeout=HEALTHZ_TIMEOUT_SECS) as http:
                try:
                    http.get("/healthz")  # connects; not counted
                finally:
                    self._ready.set()
                while not self._stop.is_set():
                    began = self._inflight = time.perf_counter()
                    try:
                        if http.get("/healthz").status_code != 200:
                            self.healthz_failures += 1
                    except httpx.HTTPError:
                        self.healthz_failures += 1
                    self._inflight = None
                    self._worst = max(self._worst, time.perf_counter() - began)
                    self._completed += 1
                    self._stop.wait(HEALTHZ_INTERVAL_SECS)
        except Exception:  # a thread's exception would be a warning, and warnings are errors
            self.healthz_failures += 1
        finally:
            self._ready.set()


def figures_table(rows: list[Figures]) -> str:
    header = (
        f"{'case':<58} {'status':>10} {'secs':>7} {'healthz ms':>10} {'RSS +MB':>8} {'bound':>6}"
    )
    lines = ["hostile inputs (DESIGN §7): answer, time, worst /healthz, RSS growth", header]
    lines.append("-" * len(header))
    for row in rows:
        healthz = f"{row.healthz_ms:.1f}" + (
            f" ({row.healthz_failures}x)" if row.healthz_failures else ""
        )
        lines.append(
            f"{row.name:<58} {row.status[:10]:>10} {row.seconds:>7.2f} {healthz:>10} "
            f"{row.rss_delta_mb:>8.1f} {row.rss_bound_mb:>6.0f}"
        )
    return "\n".join(lines)


# A loopback target for http steps: the real thing, slow or huge on purpose.

TRICKLE_BYTES = 20
BIG_CHUNK = b"x" * 65_536


async def _ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _trickle(request: Request) -> Response:
    """One byte a second, ``TRICKLE_BYTES`` in all (declared up front)."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(TRICKLE_BYTES):
            yield b"x"
            await asyncio.sleep(1)

    return StreamingResponse(
        body(), media_type="text/plain", headers={"content-length": str(TRICKLE_BYTES)}
    )


async def _big(request: Request) -> Response:
    """``?mb=`` MiB of ``x``, chunked (no Content-Length to refuse it by)."""
    chunks = int(request.query_params["mb"]) * 16

    async def body() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            yield BIG_CHUNK

    return StreamingResponse(body(), media_type="text/plain")


target_app = Starlette(routes=[Route("/ok", _ok), Route("/trickle", _trickle), Route("/big", _big)])
