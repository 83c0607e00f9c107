"""The SDK's event calls against a real server: ``send_event``, ``get_event``, ``cancel_event``
and ``list_events`` on ``/v1/events…``, with Strait's error body raising the SDK's own error
classes, as native errors do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from flowgate.client import (
    ApiError,
    AsyncClient,
    BufferedEvent,
    Client,
    Conflict,
    EventTrigger,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until

MAX_OUTPUT_BYTES = 2_000


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_output_bytes=MAX_OUTPUT_BYTES)


@pytest.fixture
async def sdk(server: ThreadedServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, ADMIN_KEY) as client:
        yield client


def approval(workflow_id: str = "wf_approval", **wait: Any) -> dict[str, Any]:
    config = {
        "eventKey": "approval-{{input.orderId}}",
        "timeoutSecs": 3600,
        "payload": {"orderId": "{{input.orderId}}"},
        **wait,
    }
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "wait", "type": "wait_for_event", "config": config},
            {
                "id": "decide",
                "type": "transform",
                "config": {"mapping": {"approved": "{{steps.wait.output.approved}}"}},
            },
        ],
    }


async def _waiting_run(sdk: AsyncClient, order_id: str) -> str:
    """Start an approval run and return its id once its trigger waits."""
    started = await sdk.run("wf_approval", {"orderId": order_id})

    async def waiting() -> bool:
        try:
            return (await sdk.get_event(f"approval-{order_id}")).status == "waiting"
        except NotFound:
            return False

    await wait_until(waiting)
    return started.run_id


def _keys(page: dict[str, Any]) -> list[str]:
    return [str(trigger["event_key"]) for trigger in page["data"]]


async def test_send_event_returns_the_received_trigger_and_the_run_completes(
    sdk: AsyncClient,
) -> None:
    await sdk.create_workflow(approval())
    run_id = await _waiting_run(sdk, "o1")

    sent = await sdk.send_event("approval-o1", {"approved": True})
    run = await sdk.wait_for_run(run_id, timeout=10)

    assert isinstance(sent, EventTrigger)
    assert (sent.event_key, sent.status, sent.ended) == ("approval-o1", "received", True)
    assert (sent.workflow_run_id, sent.source_type) == (run_id, "workflow_step")
    assert sent.response_payload == {"approved": True}
    assert sent.request_payload == {"orderId": "o1"}
    assert str(sent.sent_by).startswith("api-key:")
    assert sent.received_at is not None
    assert (run.status, run.output) == ("completed", {"approved": True})


async def test_get_event_returns_the_waiting_trigger_with_typed_fields(sdk: AsyncClient) -> None:
    await sdk.create_workflow(approval())
    run_id = await _waiting_run(sdk, "o2")

    trigger = await sdk.get_event("approval-o2")

    assert trigger.id.startswith("evt_")
    assert (trigger.status, trigger.ended, trigger.workflow_run_id) == ("waiting", False, run_id)
    assert trigger.project_id == "prj_default"
    assert trigger.timeout_secs == 3600.0
    assert trigger.requested_at is not None
    assert trigger.expires_at is not None
    assert (trigger.response_payload, trigger.received_at, trigger.error) == (None, None, None)
    assert trigger.raw["event_key"] == "approval-o2"


async def test_a_step_triggers_expires_at_is_requested_at_plus_timeout_secs(
    sdk: AsyncClient,
) -> None:
    # DESIGN §6: expires_at = requested_at + timeout_secs. A payload that takes a few
    # milliseconds to render makes any gap between the two clock readings visible.
    slow = "{% for i in (1..5000) %}{{ i }}{% endfor %}"
    await sdk.create_workflow(approval(payload={"orderId": "{{input.orderId}}", "slow": slow}))
    await _waiting_run(sdk, "o9")

    trigger = await sdk.get_event("approval-o9")

    assert trigger.requested_at is not None
    assert trigger.expires_at is not None
    assert trigger.expires_at - trigger.requested_at == timedelta(seconds=3600)


async def test_send_event_to_an_unknown_key_raises_not_found_like_a_native_404(
    sdk: AsyncClient,
) -> None:
    with pytest.raises(NotFound) as caught:
        await sdk.send_event("nobody-waits", 1)

    error = caught.value
    assert (error.code, error.status, error.message) == (
        "NOT_FOUND",
        404,
        "event trigger not found",
    )
    assert error.request_id
    assert str(error) == "NOT_FOUND: event trigger not found"


async def test_send_event_same_payload_again_returns_it_and_another_raises_conflict(
    sdk: AsyncClient,
) -> None:
    await sdk.create_workflow(approval())
    await _waiting_run(sdk, "o3")
    first = await sdk.send_event("approval-o3", {"approved": True})

    again = await sdk.send_event("approval-o3", {"approved": True})
    with pytest.raises(Conflict) as caught:
        await sdk.send_event("approval-o3", {"approved": False})

    assert isinstance(first, EventTrigger)
    assert isinstance(again, EventTrigger)
    assert again.id == first.id
    assert again.status == "received"
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        "CONFLICT",
        409,
        "event trigger is not in waiting state",
    )


async def test_send_event_with_idempotency_key_answers_a_repeat_with_other_payload(
    sdk: AsyncClient,
) -> None:
    await sdk.create_workflow(approval())
    await _waiting_run(sdk, "o4")

    first = await sdk.send_event("approval-o4", {"n": 1}, idempotency_key="send-o4")
    repeat = await sdk.send_event("approval-o4", {"n": 2}, idempotency_key="send-o4")

    assert isinstance(first, EventTrigger)
    assert isinstance(repeat, EventTrigger)
    assert (repeat.id, repeat.response_payload) == (first.id, {"n": 1})


async def test_cancel_event_cancels_the_wait_and_a_second_cancel_raises_conflict(
    sdk: AsyncClient,
) -> None:
    await sdk.create_workflow(approval())
    run_id = await _waiting_run(sdk, "o5")

    canceled = await sdk.cancel_event("approval-o5")
    run = await sdk.wait_for_run(run_id, timeout=10)
    with pytest.raises(Conflict):
        await sdk.cancel_event("approval-o5")

    assert (canceled.status, canceled.error) == ("canceled", "canceled by user")
    assert run.status == "failed"
    assert run.steps[0].status == "canceled"


async def test_send_event_with_buffer_secs_keeps_it_for_a_later_wait(sdk: AsyncClient) -> None:
    await sdk.create_workflow(approval())

    buffered = await sdk.send_event("approval-early", {"approved": True}, buffer_secs=300)
    run = await sdk.run("wf_approval", {"orderId": "early"}, wait=10)
    trigger = await sdk.get_event("approval-early")

    assert isinstance(buffered, BufferedEvent)
    assert buffered.event_key == "approval-early"
    assert buffered.raw["buffered"] is True
    assert buffered.expires_at is not None
    assert (run.status, run.output) == ("completed", {"approved": True})
    assert (trigger.status, trigger.response_payload) == ("received", {"approved": True})


async def test_list_events_filters_by_status_and_run_and_pages(sdk: AsyncClient) -> None:
    await sdk.create_workflow(approval())
    first = await _waiting_run(sdk, "l1")
    await _waiting_run(sdk, "l2")
    await _waiting_run(sdk, "l3")
    await sdk.send_event("approval-l3", {"approved": True})

    waiting = await sdk.list_events(status="waiting")
    of_run = await sdk.list_events(workflow_run_id=first)
    page_one = await sdk.list_events(limit=2)
    page_two = await sdk.list_events(limit=2, cursor=str(page_one["next_cursor"]))

    assert _keys(waiting) == ["approval-l2", "approval-l1"]
    assert _keys(of_run) == ["approval-l1"]
    assert page_one["has_more"] is True
    assert _keys(page_one) + _keys(page_two) == ["approval-l3", "approval-l2", "approval-l1"]
    assert (page_two["has_more"], page_two["next_cursor"]) == (False, None)


async def test_list_events_bad_limit_raises_invalid_request_with_straits_message(
    sdk: AsyncClient,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await sdk.list_events(limit=0)

    assert (caught.value.code, caught.value.status, caught.value.message) == (
        "INVALID_REQUEST",
        400,
        "limit must be a positive integer",
    )


async def test_list_events_another_projects_id_raises_not_found(sdk: AsyncClient) -> None:
    with pytest.raises(NotFound):
        await sdk.list_events(project_id="prj_someone_else")

    page = await sdk.list_events(project_id="prj_default")

    assert page == {"data": [], "has_more": False, "next_cursor": None}


async def test_event_keys_with_slash_question_mark_and_percent_round_trip(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    key = "orders/42?step=a%20b#1"
    created = await client.post("/v1/events", json={"event_key": key, "timeout_secs": 60})
    assert created.status_code == 201, created.text

    shown = await sdk.get_event(key)
    sent = await sdk.send_event(key, "ok")

    assert (shown.event_key, shown.source_type, shown.status) == (key, "job_run", "waiting")
    assert isinstance(sent, EventTrigger)
    assert (sent.event_key, sent.status, sent.response_payload) == (key, "received", "ok")


async def test_a_key_without_events_write_raises_forbidden(
    sdk: AsyncClient, server: ThreadedServer
) -> None:
    created = await sdk.create_key("reader", ["runs:read"])
    async with AsyncClient(server.url, str(created["key"])) as reader:
        with pytest.raises(Forbidden) as caught:
            await reader.send_event("approval-x", 1)
        listed = await reader.list_events()

    assert (caught.value.code, caught.value.status) == ("FORBIDDEN", 403)
    assert listed["data"] == []


async def _send_three(sdk: AsyncClient) -> None:
    # A fixed one-minute window may turn between two sends: three always pass a limit of one.
    for _ in range(3):
        await sdk.send_event("approval-x", 1, buffer_secs=60)


async def test_a_key_over_its_rate_limit_raises_rate_limited_with_retry_after(
    sdk: AsyncClient, server: ThreadedServer
) -> None:
    created = await sdk.create_key("limited", ["events:write"], rate_limit_per_minute=1)
    async with AsyncClient(server.url, str(created["key"]), max_retries=0) as limited:
        with pytest.raises(RateLimited) as caught:
            await _send_three(limited)

    assert (caught.value.status, caught.value.code) == (429, "RATE_LIMITED")
    assert caught.value.message == "Rate limit exceeded. Limit: 1 requests per minute."
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


async def test_an_unknown_key_raises_unauthorized(server: ThreadedServer) -> None:
    async with AsyncClient(server.url, "fgk_not_a_key") as stranger:
        with pytest.raises(Unauthorized) as caught:
            await stranger.get_event("approval-x")

    assert (caught.value.code, caught.value.status) == ("UNAUTHORIZED", 401)


async def test_a_payload_over_the_output_limit_raises_payload_too_large(
    sdk: AsyncClient,
) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        await sdk.send_event("approval-big", "x" * MAX_OUTPUT_BYTES, buffer_secs=60)

    assert (caught.value.code, caught.value.status) == ("PAYLOAD_TOO_LARGE", 413)


async def test_a_control_character_in_a_key_raises_invalid_request(sdk: AsyncClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await sdk.get_event("bad\x01key")

    assert caught.value.message == "event key must not contain control characters"


def test_sync_client_sends_gets_and_cancels(server: ThreadedServer) -> None:
    with Client(server.url, ADMIN_KEY) as sdk:
        created = httpx.post(
            f"{server.url}/v1/events",
            json={"event_key": "job-a", "timeout_secs": 60, "request_payload": {"q": 1}},
            headers={"x-api-key": ADMIN_KEY},
        )
        assert created.status_code == 201, created.text
        httpx.post(
            f"{server.url}/v1/events",
            json={"event_key": "job-b", "timeout_secs": 60},
            headers={"x-api-key": ADMIN_KEY},
        ).raise_for_status()

        shown = sdk.get_event("job-a")
        sent = sdk.send_event("job-a", {"answer": 42})
        canceled = sdk.cancel_event("job-b")
        listed = sdk.list_events(source_type="job_run")
        with pytest.raises(ApiError) as caught:
            sdk.list_events(source_type="nonsense")

    assert (shown.status, shown.request_payload, shown.job_run_id is not None) == (
        "waiting",
        {"q": 1},
        True,
    )
    assert isinstance(sent, EventTrigger)
    assert (sent.status, sent.response_payload) == ("received", {"answer": 42})
    assert (canceled.status, canceled.error) == ("canceled", "canceled by user")
    assert sorted(_keys(listed)) == ["job-a", "job-b"]
    assert (caught.value.code, caught.value.status) == ("INVALID_REQUEST", 400)
