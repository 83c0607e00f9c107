"""Races on one event key (DESIGN §6, issue 10): of a send, a timeout and a cancel arriving
together exactly one wins, and everything that shows the outcome agrees with it — the HTTP
answers, the trigger, the waiting step and its run. Each test runs its race 100 times (100 keys
raced side by side, or — the last two — 100 races one after another; never a retried race), on
SQLite and PostgreSQL, and on PostgreSQL across
processes: an API-only server (``FLOWGATE_WORKERS=0``) next to the one whose workers own the
runs, and worker processes killed with SIGKILL while the runs resume.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.settings import Settings
from flowgate.store import open_store
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.pg import free_port

FLOWGATE = str(Path(sys.executable).parent / "flowgate")
RACES = 100
#: Far above what the races send in a minute: a 429 must not decide an outcome.
RATE_LIMITS = {"execute_rate_limit": 1_000_000, "read_rate_limit": 1_000_000}
ENDED = ("received", "timed_out", "canceled")
Json = dict[str, Any]


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers=4, **RATE_LIMITS)


def _http(url: str) -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) can close one
    # under a request.
    limits = httpx.Limits(
        max_connections=2 * RACES + 20, max_keepalive_connections=2 * RACES, keepalive_expiry=1
    )
    return httpx.AsyncClient(
        base_url=url, headers={"x-api-key": ADMIN_KEY}, timeout=60, limits=limits
    )


@pytest.fixture
async def racer(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client with room for every request of a race in flight at once."""
    async with _http(str(client.base_url)) as http:
        yield http


def _wait_workflow(workflow_id: str, prefix: str, timeout_secs: float | str) -> Json:
    config = {"eventKey": prefix + "{{input.k}}", "timeoutSecs": timeout_secs}
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [{"id": "wait", "type": "wait_for_event", "config": config}],
    }


async def _start_runs(
    client: httpx.AsyncClient, workflow: Json, count: int = RACES
) -> dict[str, str]:
    """Key → run id of ``count`` runs waiting on keys ``prefix0``…"""
    created = await client.post("/api/v1/workflows", json=workflow)
    assert created.status_code == 201, created.text
    runs = [{"input": {"k": str(n), "t": 3 + n * 0.015}} for n in range(count)]
    batch = await client.post(f"/api/v1/workflows/{workflow['id']}/run/batch", json={"runs": runs})
    assert batch.status_code in (200, 201, 207), batch.text
    prefix = workflow["steps"][0]["config"]["eventKey"].split("{{")[0]
    run_ids = [item["data"]["runId"] for item in batch.json()["data"]]
    assert len(run_ids) == count
    return {f"{prefix}{n}": run_id for n, run_id in enumerate(run_ids)}


async def _triggers(client: httpx.AsyncClient, **params: Any) -> list[Json]:
    """Every trigger of the project matching ``params``, all pages."""
    found: list[Json] = []
    cursor = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/events", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        found.extend(body["data"])
        if not body["has_more"]:
            return found
        cursor = body["next_cursor"]


async def _all_waiting(client: httpx.AsyncClient, keys: set[str], **params: str) -> dict[str, Json]:
    """Key → its trigger, once every key of ``keys`` has one (``status=waiting`` unless
    ``params`` say otherwise)."""

    async def waiting() -> dict[str, Json] | None:
        found = {
            t["event_key"]: t for t in await _triggers(client, **(params or {"status": "waiting"}))
        }
        return found if keys <= set(found) else None

    found: dict[str, Json] = await wait_until(waiting, timeout=30, interval=0.1)
    return {key: found[key] for key in keys}


async def _ended_runs(client: httpx.AsyncClient, run_ids: dict[str, str]) -> dict[str, Json]:
    """Key → its run, once ended (long polls, all at once)."""

    async def one(run_id: str) -> Json:
        async def ended() -> Json | None:
            response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 5})
            run: Json = response.json()["data"]
            return run if run["status"] in ("completed", "failed", "canceled") else None

        found: Json = await wait_until(ended, timeout=30, interval=0.05)
        return found

    ended = await asyncio.gather(*(one(run_id) for run_id in run_ids.values()))
    return dict(zip(run_ids, ended, strict=True))


async def _final(client: httpx.AsyncClient, keys: set[str]) -> dict[str, Json]:
    found = {t["event_key"]: t for t in await _triggers(client)}
    assert set(found) >= keys
    return {key: found[key] for key in keys}


async def _nothing_waits(client: httpx.AsyncClient) -> None:
    stats = (await client.get("/v1/events/stats")).json()
    assert stats["waiting_count"] == 0, stats
    assert await _triggers(client, status="waiting") == []


def _at(wire: str) -> float:
    return datetime.fromisoformat(wire.replace("Z", "+00:00")).astimezone(UTC).timestamp()


# -- 1. send vs. timeout vs. cancel --------------------------------------------------------------


async def _send_timeout_cancel(
    sender: httpx.AsyncClient, canceler: httpx.AsyncClient, seed: int
) -> Counter[str]:
    """Each of RACES runs waits with ``expires_at`` about now; a send and a cancel are fired
    together at that instant (give or take a few ms). Returns how often each outcome won."""
    # Run n waits 3 + 0.015 n seconds: the races come a few at a time, each at its deadline.
    runs = await _start_runs(sender, _wait_workflow("wf_race1", "r1-", "{{input.t}}"))
    # Every run has opened its wait (a slow machine may have timed out the first already).
    waiting = await _all_waiting(sender, set(runs), source_type="workflow_step")
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()

    lead = [0.0]  # about how long a request takes to reach the store, learnt as it goes

    async def race(key: str) -> tuple[httpx.Response, httpx.Response]:
        # Fault-injection timing, not a hidden race: the pair is aimed to reach the store at
        # the trigger's deadline (a request's latency, learnt from the pairs before, ahead).
        at = _at(waiting[key]["expires_at"]) + rng.uniform(-0.05, 0.01)
        await asyncio.sleep(max(0.0, at - 2.0 - datetime.now(UTC).timestamp()))
        await asyncio.sleep(max(0.0, at - lead[0] - datetime.now(UTC).timestamp()))
        fired = loop.time()
        send, cancel = await asyncio.gather(
            sender.post(f"/v1/events/{key}/send", json={"payload": {"key": key}}),
            canceler.delete(f"/v1/events/{key}"),
        )
        lead[0] = 0.8 * lead[0] + 0.2 * (loop.time() - fired) / 2
        return send, cancel

    started = loop.time()
    answers = dict(zip(runs, await asyncio.gather(*(race(key) for key in runs)), strict=True))
    assert loop.time() - started < 20
    ended = await _ended_runs(sender, runs)
    triggers = await _final(sender, set(runs))

    outcomes: Counter[str] = Counter()
    for key, (send, cancel) in answers.items():
        trigger, run = triggers[key], ended[key]
        status = trigger["status"]
        outcomes[status] += 1
        context = (key, status, send.status_code, cancel.status_code, run["status"])
        assert status in ENDED, context
        assert send.status_code == (200 if status == "received" else 409), (context, send.text)
        assert cancel.status_code == (200 if status == "canceled" else 409), (context, cancel.text)
        [step] = run["steps"]
        if status == "received":
            assert send.json()["response_payload"] == {"key": key}, context
            assert trigger["response_payload"] == {"key": key}, context
            assert (step["status"], step["output"]) == ("completed", {"key": key}), context
            assert (run["status"], run["output"]) == ("completed", {"key": key}), context
        elif status == "timed_out":
            assert trigger["error"] == "timed out", context
            assert step["status"] == "timed_out", context
            assert (run["status"], run["error"]["code"]) == ("failed", "STEP_TIMEOUT"), context
        else:
            assert cancel.json()["status"] == "canceled", context
            assert trigger["error"] == "canceled by user", context
            assert step["status"] == "canceled", context
            assert run["status"] == "failed", context
        for loser in (r for r in (send, cancel) if r.status_code == 409):
            assert loser.json()["error"]["code"] == "conflict", context
    await _nothing_waits(sender)
    print(f"\nsend/timeout/cancel outcomes over {RACES} races: {dict(outcomes)}")
    return outcomes


async def test_send_timeout_and_cancel_at_the_deadline_have_exactly_one_winner(
    racer: httpx.AsyncClient,
) -> None:
    outcomes = await _send_timeout_cancel(racer, racer, seed=1)

    assert sum(outcomes.values()) == RACES


async def test_a_send_or_cancel_past_the_deadline_loses_to_the_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    # The job-wait sweep (every poll interval) is made rarer than the test: each send or
    # cancel meets its trigger still ``waiting`` past ``expires_at`` and must time it out.
    settings = make_settings(poll_interval_secs=120, **RATE_LIMITS)
    keys = [f"late-{n}" for n in range(RACES)]
    with ThreadedServer(create_app(settings)) as server:
        async with _http(server.url) as client:
            created = await asyncio.gather(
                *(client.post("/v1/events", json={"event_key": k, "timeout_secs": 1}) for k in keys)
            )
            assert {response.status_code for response in created} == {201}
            last = max(_at(response.json()["expires_at"]) for response in created)
            await wait_until(lambda: datetime.now(UTC).timestamp() > last + 0.01, timeout=10)

            answers = await asyncio.gather(
                *(
                    client.post(f"/v1/events/{key}/send", json={"payload": 1})
                    if n % 2
                    else client.delete(f"/v1/events/{key}")
                    for n, key in enumerate(keys)
                )
            )
            triggers = await _final(client, set(keys))

    assert [response.status_code for response in answers] == [409] * RACES
    assert {(t["status"], t["error"]) for t in triggers.values()} == {("timed_out", "timed out")}


# -- 2. two sends --------------------------------------------------------------------------------


async def _two_sends(a: httpx.AsyncClient, b: httpx.AsyncClient, runs: dict[str, str]) -> None:
    """Per key, two sends with different payloads fired together: one 200, one 409, and the
    trigger (and, for a step, the step and run) show the winner's payload."""

    async def race(key: str) -> tuple[httpx.Response, httpx.Response]:
        first, second = await asyncio.gather(
            a.post(f"/v1/events/{key}/send", json={"payload": {"by": "a", "key": key}}),
            b.post(f"/v1/events/{key}/send", json={"payload": {"by": "b", "key": key}}),
        )
        return first, second

    keys = list(runs)
    answers = dict(zip(keys, await asyncio.gather(*(race(key) for key in keys)), strict=True))
    triggers = await _final(a, set(keys))
    ended = await _ended_runs(a, {k: r for k, r in runs.items() if r})
    for key, (first, second) in answers.items():
        codes = sorted([first.status_code, second.status_code])
        assert codes == [200, 409], (key, first.text, second.text)
        winner = first if first.status_code == 200 else second
        loser = second if winner is first else first
        payload = winner.json()["response_payload"]
        assert payload["key"] == key
        assert loser.json()["error"] == {
            "code": "conflict",
            "message": "event trigger is not in waiting state",
        }
        trigger = triggers[key]
        assert (trigger["status"], trigger["response_payload"]) == ("received", payload), key
        if runs[key]:
            run = ended[key]
            assert (run["status"], run["output"]) == ("completed", payload), key
            assert [(s["status"], s["output"]) for s in run["steps"]] == [("completed", payload)]
    await _nothing_waits(a)


async def _standalone_waits(client: httpx.AsyncClient, prefix: str) -> dict[str, str]:
    keys = [f"{prefix}{n}" for n in range(RACES)]
    created = await asyncio.gather(
        *(client.post("/v1/events", json={"event_key": key, "timeout_secs": 60}) for key in keys)
    )
    assert [response.status_code for response in created] == [201] * RACES
    return dict.fromkeys(keys, "")


async def test_two_sends_to_a_waiting_step_have_one_winner_whose_payload_is_the_output(
    racer: httpx.AsyncClient,
) -> None:
    runs = await _start_runs(racer, _wait_workflow("wf_race2", "r2-", 60))
    await _all_waiting(racer, set(runs))

    await _two_sends(racer, racer, runs)


async def test_two_sends_to_a_standalone_wait_have_one_winner(racer: httpx.AsyncClient) -> None:
    waits = await _standalone_waits(racer, "j2-")

    await _two_sends(racer, racer, waits)


# -- 1 and 2 across processes ------------------------------------------------------------------


def _env(url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWGATE_DATABASE_URL": url,
        "FLOWGATE_ADMIN_KEY": ADMIN_KEY,
        "FLOWGATE_EXECUTE_RATE_LIMIT": str(RATE_LIMITS["execute_rate_limit"]),
        "FLOWGATE_READ_RATE_LIMIT": str(RATE_LIMITS["read_rate_limit"]),
        "FLOWGATE_LOG_LEVEL": "error",
        **extra,
    }


def _spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FLOWGATE, command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


@asynccontextmanager
async def _api_process(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """``flowgate serve`` with no workers, as its own process; a client of it."""
    port = free_port()
    process = _spawn("serve", _env(url, FLOWGATE_PORT=str(port), FLOWGATE_WORKERS="0"))
    try:
        async with _http(f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=60, interval=0.2)
            yield client
    finally:
        _kill(process)


def _worker_settings(url: str, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url, "admin_key": ADMIN_KEY, "workers": 4, "lease_secs": 5,
        "poll_interval_secs": 0.5, "max_wait_secs": 10, "data_dir": tmp_path,
        "log_level": "error", "log_format": "json", **RATE_LIMITS, **extra,
    }  # fmt: skip
    return Settings(**values)


@asynccontextmanager
async def _two_processes(
    url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(a client of an API-only process, a client of the server whose workers run the runs)."""
    with ThreadedServer(create_app(_worker_settings(url, tmp_path))) as worker:
        async with _api_process(url) as api, _http(worker.url) as owner:
            yield api, owner


async def test_send_timeout_and_cancel_across_processes_have_exactly_one_winner(
    postgres_url: str, tmp_path: Path
) -> None:
    async with _two_processes(postgres_url, tmp_path) as (api, owner):
        outcomes = await _send_timeout_cancel(api, owner, seed=2)

    assert sum(outcomes.values()) == RACES


async def test_two_sends_across_processes_have_one_winner(
    postgres_url: str, tmp_path: Path
) -> None:
    async with _two_processes(postgres_url, tmp_path) as (api, owner):
        runs = await _start_runs(api, _wait_workflow("wf_race2", "r2-", 60))
        await _all_waiting(api, set(runs))
        await _two_sends(api, owner, runs)
        await _two_sends(owner, api, await _standalone_waits(api, "j2-"))


# -- 3. a send while the run's worker is killed --------------------------------------------------


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        _kill(process)


def _start_worker(url: str, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    env = _env(url, FLOWGATE_WORKERS="8", FLOWGATE_LEASE_SECS="1.5")
    env["FLOWGATE_POLL_INTERVAL_SECS"] = "0.5"
    process = _spawn("worker", env)
    started.append(process)
    return process


async def test_a_send_holds_when_the_worker_resuming_the_run_is_killed(
    postgres_url: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    rounds, per_round = 2, RACES // 2
    rng = random.Random(3)
    use = {
        "id": "use",
        "type": "transform",
        "config": {"mapping": {"got": "{{steps.wait.output}}"}},
    }
    all_runs: dict[str, str] = {}
    current = _start_worker(postgres_url, workers)
    api_settings = _worker_settings(postgres_url, tmp_path, workers=0)
    with ThreadedServer(create_app(api_settings)) as server:
        async with _http(server.url) as api:
            for round_ in range(rounds):
                workflow = _wait_workflow(f"wf_race3_{round_}", f"r3-{round_}-", 600)
                workflow["steps"].append(use)
                runs = await _start_runs(api, workflow, per_round)
                await _all_waiting(api, set(runs))
                victim = current

                async def kill(victim: subprocess.Popen[bytes] = victim) -> None:
                    # Fault-injection timing: somewhere among the sends and the resumptions.
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    _kill(victim)

                sent, _ = await asyncio.gather(
                    asyncio.gather(
                        *(
                            api.post(f"/v1/events/{key}/send", json={"payload": {"key": key}})
                            for key in runs
                        )
                    ),
                    kill(),
                )
                assert [response.status_code for response in sent] == [200] * per_round
                current = _start_worker(postgres_url, workers)
                ended = await _ended_runs(api, runs)
                for key, run in ended.items():
                    assert run["status"] == "completed", (key, run)
                    assert run["output"] == {"got": {"key": key}}, (key, run)
                all_runs |= runs
            triggers = await _final(api, set(all_runs))
            await _nothing_waits(api)

    store = open_store(postgres_url)
    try:
        for key, run_id in all_runs.items():
            assert (triggers[key]["status"], triggers[key]["response_payload"]) == (
                "received",
                {"key": key},
            )
            attempts = await store.list_step_runs(run_id)
            waits = [(row["status"], row["output"]) for row in attempts if row["step_id"] == "wait"]
            assert waits == [("completed", {"key": key})], (key, attempts)
            uses = [row for row in attempts if row["step_id"] == "use"]
            assert [row["status"] for row in uses][-1:] == ["completed"], (key, uses)
            lost = [row["error"]["code"] for row in uses[:-1] if row["error"]]
            assert lost == ["WORKER_LOST"] * (len(uses) - 1), (key, uses)
    finally:
        await store.close()


# -- 4. a buffered event is taken by exactly one wait -------------------------------------------


async def _buffer(client: httpx.AsyncClient, keys: list[str]) -> None:
    sent = await asyncio.gather(
        *(
            client.post(
                f"/v1/events/{key}/send", params={"buffer_secs": 60}, json={"payload": {"k": key}}
            )
            for key in keys
        )
    )
    for key, response in zip(keys, sent, strict=True):
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"buffered", "event_key", "expires_at"}
        assert (body["buffered"], body["event_key"]) == (True, key)
        assert 59 <= _at(body["expires_at"]) - datetime.now(UTC).timestamp() <= 60


async def test_a_buffered_event_is_taken_by_exactly_one_of_two_concurrent_waits(
    racer: httpx.AsyncClient,
) -> None:
    keys = [f"b4-{n}" for n in range(RACES)]
    await _buffer(racer, keys)

    async def two_waits(key: str) -> list[httpx.Response]:
        wait = {"event_key": key, "timeout_secs": 60}
        return list(
            await asyncio.gather(
                racer.post("/v1/events", json=wait), racer.post("/v1/events", json=wait)
            )
        )

    answers = await asyncio.gather(*(two_waits(key) for key in keys))
    for key, pair in zip(keys, answers, strict=True):
        # The first to lock the key takes the event and is received at once; the key then has
        # no waiting trigger, so the second opens an ordinary wait.
        assert [response.status_code for response in pair] == [201, 201], [r.text for r in pair]
        bodies = sorted((r.json() for r in pair), key=lambda body: body["status"])
        assert [body["status"] for body in bodies] == ["received", "waiting"], key
        assert bodies[0]["response_payload"] == {"k": key}
        assert bodies[0]["received_at"] == bodies[0]["requested_at"]
        assert bodies[1]["response_payload"] is None
        current = (await racer.get(f"/v1/events/{key}")).json()
        assert (current["id"], current["status"]) == (bodies[1]["id"], "waiting")
    stats = (await racer.get("/v1/events/stats")).json()
    assert (stats["received_count"], stats["waiting_count"]) == (RACES, RACES)


async def test_a_buffered_send_racing_a_new_wait_is_received_exactly_once(
    racer: httpx.AsyncClient,
) -> None:
    keys = [f"c4-{n}" for n in range(RACES)]

    async def race(key: str) -> tuple[httpx.Response, httpx.Response]:
        send, wait = await asyncio.gather(
            racer.post(f"/v1/events/{key}/send", params={"buffer_secs": 60}, json={"payload": key}),
            racer.post("/v1/events", json={"event_key": key, "timeout_secs": 60}),
        )
        return send, wait

    answers = await asyncio.gather(*(race(key) for key in keys))
    kinds: Counter[str] = Counter()
    for key, (send, wait) in zip(keys, answers, strict=True):
        assert wait.status_code == 201, wait.text
        trigger = (await racer.get(f"/v1/events/{key}")).json()
        assert (trigger["id"], trigger["status"]) == (wait.json()["id"], "received"), key
        assert trigger["response_payload"] == key
        if send.status_code == 202:  # kept first, then taken by the wait as it opened
            kinds["buffered"] += 1
            assert wait.json()["status"] == "received", key
        else:  # the wait opened first, then the send resolved it
            kinds["sent"] += 1
            assert send.status_code == 200, send.text
            assert send.json()["id"] == wait.json()["id"]
            assert wait.json()["status"] == "waiting", key
    stats = (await racer.get("/v1/events/stats")).json()
    assert (stats["received_count"], stats["total_count"]) == (RACES, RACES)
    print(f"\nbuffered send vs. new wait over {RACES} races: {dict(kinds)}")


async def test_a_step_waiting_after_a_buffered_send_completes_at_once(
    racer: httpx.AsyncClient,
) -> None:
    await _buffer(racer, [f"w4-{n}" for n in range(RACES)])

    runs = await _start_runs(racer, _wait_workflow("wf_race4", "w4-", 600))
    ended = await _ended_runs(racer, runs)
    triggers = await _final(racer, set(runs))

    for key, run in ended.items():
        assert (run["status"], run["output"]) == ("completed", {"k": key}), (key, run)
        trigger = triggers[key]
        assert (trigger["status"], trigger["response_payload"]) == ("received", {"k": key})
        assert trigger["received_at"] == trigger["requested_at"]
        assert trigger["workflow_run_id"] == run["id"]
    again = await racer.post("/v1/events/w4-0/send", json={"payload": {"k": "other"}})
    assert again.status_code == 409
    await _nothing_waits(racer)


async def test_send_timeout_and_cancel_100_times_in_a_row_have_one_winner_each_time(
    racer: httpx.AsyncClient,
) -> None:
    """The same race as above, one after another: a standalone wait that expires about now,
    a send and a cancel fired together at it; each time exactly one outcome holds."""
    outcomes: Counter[str] = Counter()
    for n in range(RACES):
        key = f"row-{n}"
        # Deadlines from 1 to 28 ms: some races end before, some at, some after the deadline.
        timeout = 0.001 + (n % 10) * 0.003
        created = await racer.post("/v1/events", json={"event_key": key, "timeout_secs": timeout})
        assert created.status_code == 201, created.text
        sent, canceled = await asyncio.gather(
            racer.post(f"/v1/events/{key}/send", json={"payload": n}),
            racer.delete(f"/v1/events/{key}"),
        )
        final = await wait_until(lambda key=key: _ended(racer, key))
        outcomes[final["status"]] += 1
        assert (sent.status_code == 200) == (final["status"] == "received"), (sent.text, final)
        assert (canceled.status_code == 200) == (final["status"] == "canceled"), final
        assert {sent.status_code, canceled.status_code} <= {200, 409}
        assert final["response_payload"] == (n if final["status"] == "received" else None)
    print(f"\nin-a-row outcomes over {RACES} races: {dict(outcomes)}")
    assert sum(outcomes.values()) == RACES


async def test_two_sends_100_times_in_a_row_have_one_winner_each_time(
    racer: httpx.AsyncClient,
) -> None:
    for n in range(RACES):
        key = f"pair-{n}"
        created = await racer.post("/v1/events", json={"event_key": key, "timeout_secs": 60})
        assert created.status_code == 201, created.text
        first, second = await asyncio.gather(
            racer.post(f"/v1/events/{key}/send", json={"payload": "first"}),
            racer.post(f"/v1/events/{key}/send", json={"payload": "second"}),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        winner = first if first.status_code == 200 else second
        stored = (await racer.get(f"/v1/events/{key}")).json()
        assert stored["response_payload"] == winner.json()["response_payload"]


async def _ended(client: httpx.AsyncClient, key: str) -> Json | None:
    trigger: Json = (await client.get(f"/v1/events/{key}")).json()
    return trigger if trigger["status"] in ENDED else None
