"""Live streams (DESIGN §3 runs, §6 events): Server-Sent Events woken by notifications.

``GET /v1/events/{key}/stream`` sends ``event: status`` frames with the trigger, the current
one first, until it ends; ``GET /api/v1/runs/{id}/stream`` sends ``event: run`` frames, then
``event: end``. A client that goes away leaves no watcher behind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.api.app import create_app
from flowgate.api.routes import streams
from flowgate.engine.notifier import Notifier
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow
from tests.integration.test_events import approval

STREAM_TIMEOUT = 15.0


@dataclass
class Frame:
    event: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)


class Stream:
    """An open SSE response, read frame by frame (comments are kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> Frame | None:
        """The next frame with an event, or None when the server closed the stream."""
        async with asyncio.timeout(STREAM_TIMEOUT):
            frame = Frame()
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("event:"):
                    frame.event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    frame.data = json.loads(line.removeprefix("data:").strip())
                elif line == "" and frame.event is not None:
                    return frame
            return None

    async def rest(self) -> list[Frame]:
        """Every frame until the server closes the stream."""
        frames = []
        while (frame := await self.next()) is not None:
            frames.append(frame)
        return frames


@asynccontextmanager
async def _stream(client: httpx.AsyncClient, url: str) -> AsyncIterator[Stream]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


def _notifier(server: ThreadedServer) -> Notifier:
    notifier: Notifier = server.server.config.app.state.services.notifier
    return notifier


async def _start(client: httpx.AsyncClient, order_id: str) -> str:
    await create_workflow(client, approval())
    started = await client.post(
        "/api/v1/workflows/wf_approval/run", json={"input": {"orderId": order_id}}
    )
    assert started.status_code == 201, started.text
    run_id: str = started.json()["data"]["runId"]
    return run_id


async def _waiting(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        response = await client.get(f"/v1/events/{key}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == "waiting" else None

    trigger: dict[str, Any] = await wait_until(found)
    return trigger


async def test_event_stream_shows_waiting_then_received_and_closes(
    client: httpx.AsyncClient,
) -> None:
    await _start(client, "s1")
    trigger = await _waiting(client, "approval-s1")

    async with _stream(client, "/v1/events/approval-s1/stream") as stream:
        first = await stream.next()
        sent = await client.post("/v1/events/approval-s1/send", json={"payload": {"ok": 1}})
        rest = await stream.rest()

    assert sent.status_code == 200, sent.text
    assert first is not None
    assert (first.event, first.data) == ("status", trigger)
    assert [(f.event, f.data) for f in rest] == [("status", sent.json())]


async def test_event_stream_of_an_ended_trigger_sends_it_once_and_closes(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/v1/events", json={"event_key": "job/s2", "timeout_secs": 60})
    assert created.status_code == 201, created.text
    canceled = await client.delete("/v1/events/job/s2")
    assert canceled.status_code == 200, canceled.text

    async with _stream(client, "/v1/events/job/s2/stream") as stream:
        frames = await stream.rest()

    assert [(f.event, f.data) for f in frames] == [("status", canceled.json())]
    assert canceled.json()["status"] == "canceled"


async def test_event_stream_shows_a_timeout_woken_by_the_sweep_and_closes(
    client: httpx.AsyncClient,
) -> None:
    """No send and no cancel: only the expiry sweep's signal can wake the stream (its safety
    re-read is minutes away), so the timed-out frame proves the sweep announces what it ends."""
    created = await client.post("/v1/events", json={"event_key": "job/s3", "timeout_secs": 1})
    assert created.status_code == 201, created.text

    async with _stream(client, "/v1/events/job/s3/stream") as stream:
        frames = await stream.rest()

    assert [(f.event, f.data["status"]) for f in frames] == [
        ("status", "waiting"),
        ("status", "timed_out"),
    ]
    assert frames[-1].data["error"] == "timed out"


async def test_event_stream_of_an_unknown_key_is_404_in_straits_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/events/nobody-waits/stream")

    assert response.status_code == 404
    body = response.json()
    assert body["error"] == {"code": "not_found", "message": "event trigger not found"}
    assert isinstance(body["request_id"], str)


async def test_event_stream_needs_runs_read(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events/any/stream", headers={"x-api-key": "fg_wrong"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


async def test_run_stream_shows_each_change_of_a_waiting_run_then_end(
    client: httpx.AsyncClient,
) -> None:
    run_id = await _start(client, "s3")

    async with _stream(client, f"/api/v1/runs/{run_id}/stream") as stream:
        seen = [await stream.next()]
        while seen[-1] is not None and seen[-1].data["status"] != "waiting":
            seen.append(await stream.next())
        sent = await client.post("/v1/events/approval-s3/send", json={"payload": {"approved": 1}})
        seen += await stream.rest()
    final = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]

    assert sent.status_code == 200, sent.text
    frames = [f for f in seen if f is not None]
    assert [f.event for f in frames[:-1]] == ["run"] * (len(frames) - 1)
    waiting = next(f.data for f in frames if f.data["status"] == "waiting")
    assert [(s["id"], s["status"]) for s in waiting["steps"]] == [
        ("wait", "waiting"),
        ("decide", "pending"),
    ]
    assert frames[-2].data == final
    assert final["status"] == "completed"
    assert (frames[-1].event, frames[-1].data) == ("end", {"id": run_id, "status": "completed"})
    # one frame per change: never the same run twice in a row
    runs = [f.data for f in frames[:-1]]
    assert all(a != b for a, b in itertools.pairwise(runs))


async def test_run_stream_of_an_ended_run_sends_it_then_end(client: httpx.AsyncClient) -> None:
    run_id = await _start(client, "s4")
    canceled = await client.post(f"/api/v1/runs/{run_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    shown = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]

    async with _stream(client, f"/api/v1/runs/{run_id}/stream") as stream:
        frames = await stream.rest()

    assert [(f.event, f.data) for f in frames] == [
        ("run", shown),
        ("end", {"id": run_id, "status": "canceled"}),
    ]


async def test_run_stream_of_an_unknown_run_is_404_in_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/runs/run_nope/stream")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Run not found"},
    }


async def test_streams_send_keepalive_comments_while_idle(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "KEEPALIVE_SECS", 0.1)
    await _start(client, "s5")
    await _waiting(client, "approval-s5")

    async with _stream(client, "/v1/events/approval-s5/stream") as stream:
        first = await stream.next()
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for line in stream.lines:
                if line.startswith(":"):
                    break
        comment = line

    assert first is not None
    assert first.data["status"] == "waiting"
    assert comment == ": keepalive"


async def test_a_client_going_away_releases_its_watcher(
    client: httpx.AsyncClient, server: ThreadedServer
) -> None:
    run_id = await _start(client, "s6")
    await _waiting(client, "approval-s6")
    notifier = _notifier(server)

    async with _stream(client, "/v1/events/approval-s6/stream") as events:
        await events.next()
        async with _stream(client, f"/api/v1/runs/{run_id}/stream") as runs:
            await runs.next()
            held = notifier.change_watchers()
    await wait_until(lambda: notifier.change_watchers() == 0)

    assert held == 2


def _settings(url: str, tmp_path: Path, *, workers: int) -> Settings:
    return Settings(
        database_url=url,
        admin_key=ADMIN_KEY,
        workers=workers,
        poll_interval_secs=60.0,  # only a notification can wake anything in time
        max_wait_secs=10,
        data_dir=tmp_path,
        log_level="warning",
        log_format="json",
    )


async def test_api_process_streams_a_run_executed_by_a_worker_process(
    postgres_url: str, tmp_path: Path
) -> None:
    api_only = ThreadedServer(create_app(_settings(postgres_url, tmp_path, workers=0)))
    worker = ThreadedServer(create_app(_settings(postgres_url, tmp_path, workers=2)))
    with api_only, worker:
        async with httpx.AsyncClient(
            base_url=api_only.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as client:
            run_id = await _start(client, "s7")
            async with _stream(client, f"/api/v1/runs/{run_id}/stream") as runs:
                seen = [await runs.next()]
                while seen[-1] is not None and seen[-1].data["status"] != "waiting":
                    seen.append(await runs.next())
                async with _stream(client, "/v1/events/approval-s7/stream") as events:
                    first = await events.next()
                    sent = await client.post("/v1/events/approval-s7/send", json={"payload": 1})
                    event_frames = await events.rest()
                seen += await runs.rest()

    assert sent.status_code == 200, sent.text
    assert first is not None
    assert first.data["status"] == "waiting"
    assert [f.data["status"] for f in event_frames] == ["received"]
    frames = [f for f in seen if f is not None]
    assert frames[-2].data["status"] == "completed"
    assert frames[-1].event == "end"
