"""Celery + Redis running issue 12's 3-step chain, for ``make bench PEERS=1`` (case P1).

Run by the peers' own interpreter (``.venv-peers/bin/python -m bench.peer_celery``), so Celery
never enters flowgate's environment. It starts Debian's ``redis-server`` (no persistence: no RDB
snapshot, no AOF) and a Celery worker (prefork, 2 processes: the machine's cores) on loopback,
then measures:

- chains/s: ``--runs`` chains of three tasks, each mapping its input like the ``transform`` steps,
  sent at once; from the first send to the last chain's result;
- the one-task round trip: ``apply_async(...).get()`` one at a time.

It prints one ``BENCH_JSON {...}`` line with the medians of ``--repeats`` repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery, chain

REDIS_URL_ENV = "BENCH_REDIS_URL"
REPO = Path(__file__).resolve().parent.parent

app = Celery("bench_peer", broker=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"))
app.conf.update(
    result_backend=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.a")
def step_a(data: dict[str, Any]) -> dict[str, Any]:
    return {"x": data["n"]}


@app.task(name="bench.b")
def step_b(data: dict[str, Any]) -> dict[str, Any]:
    return {"y": data["x"]}


@app.task(name="bench.c")
def step_c(data: dict[str, Any]) -> dict[str, Any]:
    return {"z": data["y"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--round-trips", type=int, default=300)
    args = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("redis-server is not installed (make bench-peers)", file=sys.stderr)
        return 2
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        redis = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        worker = None
        try:
            app.conf.broker_url = url
            app.conf.result_backend = url
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.peer_celery", "worker",
                 "--concurrency=2", "--pool=prefork", "--loglevel=warning",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env=os.environ | {REDIS_URL_ENV: url},
                stdout=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            _wait_ready()
            _chains(200)  # warm-up
            rates = [_chains(args.runs) for _ in range(args.repeats)]
            trips = sorted(_round_trip() for _ in range(args.round_trips))
        finally:
            for proc in (worker, redis):
                if proc is not None:
                    _stop(proc)
    result = {
        "chains": args.runs,
        "chains_per_sec": statistics.median(rates),
        "chains_per_sec_all": [round(r, 1) for r in rates],
        "task_rt_samples": len(trips),
        "task_rt_p50_ms": trips[len(trips) // 2],
        "task_rt_p99_ms": trips[min(len(trips) - 1, int(len(trips) * 0.99))],
        "task_rt_rate": 1000 * len(trips) / sum(trips),
    }
    print("BENCH_JSON " + json.dumps(result))
    return 0


def _chains(count: int) -> float:
    start = time.perf_counter()
    results = [
        chain(step_a.s({"n": n}), step_b.s(), step_c.s()).apply_async() for n in range(count)
    ]
    for n, result in enumerate(results):
        if result.get(timeout=600) != {"z": n}:
            raise RuntimeError(f"chain {n} answered {result.result!r}")
    return count / (time.perf_counter() - start)


def _round_trip() -> float:
    start = time.perf_counter()
    step_a.apply_async(({"n": 1},)).get(timeout=60)
    return (time.perf_counter() - start) * 1000


def _wait_ready(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if app.control.ping(timeout=0.5):
                return
        except Exception:  # noqa: S110  # redis not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError("the Celery worker did not answer a ping within 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
