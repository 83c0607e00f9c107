"""Servers as subprocesses: own process group, wait for health, terminate then kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
HEALTH_DEADLINE_SECS = 60.0
STOP_GRACE_SECS = 10.0
_POLL_SECS = 0.1
_LOG_TAIL_CHARS = 3000


class ServerFailed(Exception):
    """A server subprocess exited or never became healthy; the message ends with its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process could take it; unlikely here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    port: int,
    log_path: Path,
    health_path: str = "/healthz",
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``argv``; once ``GET health_path`` is 200 yield its base URL and the process; stop
    it on exit."""
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C reaches only us, and stopping takes its children too.
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_healthy(name, proc, base_url + health_path, log_path)
            yield base_url, proc
        finally:
            stop(proc)
    if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
        # Not fatal for the figures already taken, but worth a look.
        print(f"note: {name} exited with {proc.returncode}; log:\n{_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it if it outlives the grace period."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_SECS), (signal.SIGKILL, STOP_GRACE_SECS)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # The leader may be gone while a child of its group lingers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_healthy(name: str, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_DEADLINE_SECS
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(
                    f"{name} exited with {proc.returncode} before it was healthy; log:\n"
                    + _tail(log_path)
                )
            try:
                status = client.get(url).status_code
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if status == 200:
                    return
                last = f"HTTP {status}"
            time.sleep(_POLL_SECS)
    raise ServerFailed(
        f"{name} not healthy after {HEALTH_DEADLINE_SECS:.0f} s ({last}); log:\n" + _tail(log_path)
    )


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-_LOG_TAIL_CHARS:] or "(empty log)"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")
