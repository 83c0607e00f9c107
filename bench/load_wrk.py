"""The load through ``wrk`` (when installed): a Lua ``done`` hook prints the figures as JSON."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from bench.load import IDEMPOTENCY_HEADER, LoadResult, LoadSpec

MARKER = "BENCH_JSON "
_TIMEOUT_SECS = 10
_GRACE_SECS = 60.0

_DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %.0f, "duration_us": %.0f, "connect": %.0f, "read": %.0f, '
      .. '"write": %.0f, "status": %.0f, "timeout": %.0f, "p50_us": %.0f, "p99_us": %.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


_KEYED_REQUEST = """
local sent = 0
request = function()
  sent = sent + 1
  if sent % 2 == 0 then
    wrk.headers["HEADER"] = PREFIX .. sent
  else
    wrk.headers["HEADER"] = nil
  end
  return wrk.format()
end
"""
"""Every second request with a fresh ``Idempotency-Key`` (wrk calls ``request`` per request)."""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(spec: LoadSpec) -> LoadResult:
    """Run wrk with one thread (the other core serves) and read the ``done`` hook's line."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(lua_script(spec))
        argv = [
            "wrk",
            "--threads=1",
            f"--connections={spec.connections}",
            f"--duration={max(1, math.ceil(spec.seconds))}s",
            f"--timeout={_TIMEOUT_SECS}s",
            f"--script={script}",
            spec.url,
        ]
        # subprocess.run kills wrk on any exception, Ctrl-C included.
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=spec.seconds + _GRACE_SECS, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse(done.stdout)


def lua_script(spec: LoadSpec) -> str:
    lines = [f"wrk.method = {_lua_string(spec.method)}", f"wrk.body = {_lua_string(spec.body)}"]
    lines += [
        f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}"
        for name, value in spec.headers.items()
    ]
    if spec.idempotency_half:
        prefix = _lua_string(uuid.uuid4().hex + "-")
        lines.append(_KEYED_REQUEST.replace("PREFIX", prefix).replace("HEADER", IDEMPOTENCY_HEADER))
    return "\n".join(lines) + "\n" + _DONE_HOOK


def parse(stdout: str) -> LoadResult:
    """The figures from the ``done`` hook's line of wrk's output."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {MARKER.strip()} line:\n{stdout}")
    raw = json.loads(line.removeprefix(MARKER))
    transport = int(raw["connect"] + raw["read"] + raw["write"])
    # wrk's "status" errors are answers >= 400; it cannot tell 2xx from 3xx.
    requests, non_2xx = int(raw["requests"]), int(raw["status"])
    statuses = {"2xx/3xx": requests - non_2xx, "4xx/5xx": non_2xx}
    statuses |= {"transport": transport, "timeout": int(raw["timeout"])}
    return LoadResult(
        generator="wrk",
        seconds=raw["duration_us"] / 1e6,
        requests=requests,
        ok=requests - non_2xx,
        errors=non_2xx + transport + int(raw["timeout"]),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        statuses={k: v for k, v in statuses.items() if v},
    )


def _lua_string(value: str | bytes) -> str:
    """A Lua long-bracket literal whose level does not occur in ``value``."""
    text = value.decode() if isinstance(value, bytes) else value
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A long bracket drops a newline right after the opening; a leading one must survive.
    return f"[{eq}[\n{text}]{eq}]"
