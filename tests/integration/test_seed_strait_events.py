"""The Strait seed (``004_…``), request by request, and the edges of DESIGN §6's ``/v1/events``.

Each test sends the seed's own example request (host and key swapped) and checks the status and
the whole body: every key of the seed's objects (plus ``sent_by``) with its type and value. The
server's clock is frozen, so triggers created together share one ``requested_at`` (ties for the
cursor) and waits, expiries and purges are measured exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from flowgate.clock import FrozenClock
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow

SEED_TRIGGER_KEYS = {
    "id",
    "event_key",
    "project_id",
    "source_type",
    "workflow_run_id",
    "workflow_step_run_id",
    "job_run_id",
    "status",
    "request_payload",
    "response_payload",
    "timeout_secs",
    "requested_at",
    "received_at",
    "expires_at",
    "error",
}
TRIGGER_KEYS = SEED_TRIGGER_KEYS | {"sent_by"}
STRAIT_CODES = {
    "bad_request",
    "authentication_required",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "internal_error",
}
WIRE_TIME = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC))


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(poll_interval_secs=0.1, max_output_bytes=64 * 1024)


@pytest.fixture
def server(server_settings: Settings, clock: FrozenClock) -> Iterator[ThreadedServer]:
    from flowgate.api.app import create_app
    from flowgate.service.core import build_services

    services = build_services(server_settings, clock=clock)
    with ThreadedServer(create_app(server_settings, services=services)) as running:
        yield running


# --- helpers ------------------------------------------------------------------------------------


def wire(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_wire(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_trigger(obj: Any, **expected: Any) -> None:
    """Every key of the seed's trigger object plus ``sent_by``, each with its type; the values
    of ``expected`` exactly."""
    assert isinstance(obj, dict), obj
    assert set(obj) == TRIGGER_KEYS, set(obj) ^ TRIGGER_KEYS
    assert re.fullmatch(r"evt_\S+", obj["id"]), obj["id"]
    assert isinstance(obj["event_key"], str)
    assert obj["project_id"] == "prj_default"
    assert obj["source_type"] in ("workflow_step", "job_run")
    assert obj["status"] in ("waiting", "received", "timed_out", "canceled")
    if obj["source_type"] == "job_run":
        assert obj["workflow_run_id"] is None
        assert obj["workflow_step_run_id"] is None
        assert re.fullmatch(r"job_\S+", obj["job_run_id"]), obj["job_run_id"]
    else:
        assert obj["workflow_run_id"].startswith("run_")
        assert isinstance(obj["workflow_step_run_id"], str)
        assert obj["workflow_step_run_id"]
        assert obj["job_run_id"] is None
    assert isinstance(obj["timeout_secs"], int | float)
    assert not isinstance(obj["timeout_secs"], bool)
    for name in ("requested_at", "expires_at"):
        assert WIRE_TIME.match(obj[name]), (name, obj[name])
    assert parse_wire(obj["expires_at"]) == parse_wire(obj["requested_at"]) + timedelta(
        seconds=obj["timeout_secs"]
    )
    if obj["status"] == "received":
        assert WIRE_TIME.match(obj["received_at"]), obj["received_at"]
        assert re.fullmatch(r"api-key:\S+", obj["sent_by"]), obj["sent_by"]
        assert obj["error"] is None
    else:
        assert obj["received_at"] is None
        assert obj["response_payload"] is None
        assert obj["sent_by"] is None
    error = {"waiting": None, "received": None, "timed_out": "timed out"}
    if obj["status"] in error:
        assert obj["error"] == error[obj["status"]]
    else:
        assert isinstance(obj["error"], str)
    for name, value in expected.items():
        assert obj[name] == value, (name, obj[name], value)


def assert_error(
    response: httpx.Response,
    status: int,
    code: str,
    message: str | None = None,
    *,
    context: object = None,
) -> dict[str, Any]:
    """Strait's error body ``{"error": {"code", "message", "details"?}, "request_id"}``."""
    assert response.status_code == status, (context, response.text)
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    error: dict[str, Any] = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert error["code"] == code, (context, error)
    assert code in STRAIT_CODES
    assert isinstance(error["message"], str)
    assert error["message"]
    if message is not None:
        assert error["message"] == message, (context, error)
    assert body["request_id"]
    assert body["request_id"] == response.headers["x-request-id"]
    return error


async def wait_job(
    client: httpx.AsyncClient, key: str, timeout_secs: float = 60, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/events", json={"event_key": key, "timeout_secs": timeout_secs, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_key(client: httpx.AsyncClient, *scopes: str) -> dict[str, Any]:
    response = await client.post("/api/v1/keys", json={"name": "k", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def waiting_workflow(workflow_id: str = "wf_wait") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {
                    "eventKey": "approval-{{input.orderId}}",
                    "timeoutSecs": 3600,
                    "payload": {"orderId": "{{input.orderId}}"},
                },
            }
        ],
    }


async def start_waiting_run(client: httpx.AsyncClient, order_id: str) -> tuple[str, dict[str, Any]]:
    started = await client.post(
        "/api/v1/workflows/wf_wait/run", json={"input": {"orderId": order_id}}
    )
    assert started.status_code == 201, started.text
    run_id: str = started.json()["data"]["runId"]

    async def waiting() -> dict[str, Any] | None:
        response = await client.get(f"/v1/events/approval-{order_id}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == "waiting" else None

    trigger: dict[str, Any] = await wait_until(waiting)
    return run_id, trigger


async def status_of(client: httpx.AsyncClient, key: str) -> str:
    status: str = (await client.get(f"/v1/events/{key}")).json()["status"]
    return status


async def list_keys(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [item["event_key"] for item in response.json()["data"]]


# --- List event triggers for a project -----------------------------------------------------------


async def test_list_seed_request_returns_every_key_of_every_trigger(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    empty = await client.get("/v1/events?project_id=prj_default")
    older = await wait_job(client, "string", 30, request_payload={"a": [1, "x"]})
    clock.advance(seconds=1)
    newer = await wait_job(client, "other")

    response = await client.get("/v1/events?project_id=prj_default")

    assert empty.status_code == 200
    assert empty.json() == {"data": [], "has_more": False, "next_cursor": None}
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"data", "has_more", "next_cursor"}
    assert body["has_more"] is False
    assert body["next_cursor"] is None
    assert body["data"] == [newer, older]
    assert_trigger(
        body["data"][1],
        event_key="string",
        source_type="job_run",
        status="waiting",
        request_payload={"a": [1, "x"]},
        timeout_secs=30,
        requested_at=wire(clock.now() - timedelta(seconds=1)),
        expires_at=wire(clock.now() + timedelta(seconds=29)),
    )


async def test_list_without_project_id_uses_the_keys_project(client: httpx.AsyncClient) -> None:
    await wait_job(client, "mine")

    assert await list_keys(client) == ["mine"]


async def test_list_another_projects_id_is_404(client: httpx.AsyncClient) -> None:
    project = await client.post("/api/v1/projects", json={"name": "B"})
    assert project.status_code == 201, project.text
    await wait_job(client, "mine")

    other = await client.get("/v1/events", params={"project_id": project.json()["data"]["id"]})
    unknown = await client.get("/v1/events", params={"project_id": "string"})

    assert_error(other, 404, "not_found")
    assert_error(unknown, 404, "not_found")


async def test_list_filters_by_status_source_type_and_run(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await create_workflow(client, waiting_workflow())
    run_id, _ = await start_waiting_run(client, "o1")
    clock.advance(seconds=1)
    await wait_job(client, "job-waiting")
    clock.advance(seconds=1)
    await wait_job(client, "job-received")
    sent = await client.post("/v1/events/job-received/send", json={"payload": 1})
    assert sent.status_code == 200, sent.text
    clock.advance(seconds=1)
    await wait_job(client, "job-canceled")
    assert (await client.delete("/v1/events/job-canceled")).status_code == 200

    assert await list_keys(client, status="waiting") == ["job-waiting", "approval-o1"]
    assert await list_keys(client, status="received") == ["job-received"]
    assert await list_keys(client, status="canceled") == ["job-canceled"]
    assert await list_keys(client, status="timed_out") == []
    assert await list_keys(client, source_type="workflow_step") == ["approval-o1"]
    assert await list_keys(client, source_type="job_run") == [
        "job-canceled",
        "job-received",
        "job-waiting",
    ]
    assert await list_keys(client, workflow_run_id=run_id) == ["approval-o1"]
    assert await list_keys(client, workflow_run_id="run_nope") == []
    assert await list_keys(client, status="waiting", source_type="job_run") == ["job-waiting"]


async def test_list_bad_status_or_source_type_is_400(client: httpx.AsyncClient) -> None:
    for params in [
        {"status": "done"},
        {"status": "WAITING"},
        {"status": ""},
        {"source_type": "job"},
        {"source_type": "workflow_step "},
    ]:
        response = await client.get("/v1/events", params=params)
        assert_error(response, 400, "bad_request", context=params)


async def test_list_limit_defaults_to_50_and_is_clamped_to_100(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    for n in range(101):
        clock.advance(milliseconds=1)
        await wait_job(client, f"k{n:03d}")

    default = (await client.get("/v1/events")).json()
    huge = (await client.get("/v1/events", params={"limit": "1000"})).json()
    beyond_64_bits = await client.get("/v1/events", params={"limit": "9" * 30})

    assert [item["event_key"] for item in default["data"]] == [
        f"k{n:03d}" for n in range(100, 50, -1)
    ]
    assert default["has_more"] is True
    assert default["next_cursor"] == default["data"][-1]["requested_at"]
    assert len(huge["data"]) == 100
    assert huge["has_more"] is True
    assert beyond_64_bits.status_code == 200
    assert len(beyond_64_bits.json()["data"]) == 100


async def test_list_limit_not_a_positive_integer_is_400(client: httpx.AsyncClient) -> None:
    for limit in ["0", "-1", "abc", "1.5", "", " ", "1e3", "0x10", "1_0"]:
        response = await client.get("/v1/events", params={"limit": limit})

        assert_error(
            response, 400, "bad_request", "limit must be a positive integer", context=limit
        )


async def test_list_bad_cursor_is_400(client: httpx.AsyncClient) -> None:
    for cursor in [
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2024-01-01T00:00:00Z\n",
        "2024-01-01T00:00:00Z ",
        "2024-01-01T00:00:00+0100",
        "9" * 400,
    ]:
        response = await client.get("/v1/events", params={"cursor": cursor})

        assert_error(response, 400, "bad_request", "invalid cursor format", context=cursor)


async def test_list_cursor_pages_newest_first_through_ties_without_skip_or_repeat(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    created: list[str] = []
    for instant, count in enumerate([3, 1, 7, 2, 5]):
        clock.advance(seconds=1)
        for n in range(count):
            created.append((await wait_job(client, f"t{instant}-{n}"))["event_key"])

    for limit in (1, 2, 3, 4, 6):
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(30):
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await client.get("/v1/events", params=params)).json()
            seen.extend(page["data"])
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            assert page["next_cursor"] == page["data"][-1]["requested_at"]
            cursor = page["next_cursor"]
        keys = [item["event_key"] for item in seen]
        assert sorted(keys) == sorted(created), limit
        assert len(keys) == len(set(keys)), limit
        times = [item["requested_at"] for item in seen]
        assert times == sorted(times, reverse=True), limit


async def test_list_has_more_is_false_once_every_trigger_was_returned(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "older")
    clock.advance(seconds=1)
    for n in range(3):
        await wait_job(client, f"tied-{n}")

    first = (await client.get("/v1/events", params={"limit": 2})).json()
    cursor = first["next_cursor"]
    second = (await client.get("/v1/events", params={"limit": 2, "cursor": cursor})).json()
    everything = [item["event_key"] for item in first["data"] + second["data"]]

    assert sorted(everything) == ["older", "tied-0", "tied-1", "tied-2"]
    assert second["has_more"] is False
    assert second["data"] != []


async def test_list_has_more_promises_another_item_even_when_a_tie_fills_the_page(
    client: httpx.AsyncClient,
) -> None:
    for n in range(3):
        await wait_job(client, f"tied-{n}")

    first = (await client.get("/v1/events", params={"limit": 2})).json()
    rest = []
    if first["has_more"]:
        params = {"limit": 2, "cursor": first["next_cursor"]}
        rest = (await client.get("/v1/events", params=params)).json()["data"]

    returned = [item["event_key"] for item in first["data"] + rest]
    assert sorted(returned) == ["tied-0", "tied-1", "tied-2"]
    assert first["has_more"] is (rest != [])


async def test_list_cursor_from_an_earlier_instant_returns_only_older_triggers(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "old")
    clock.advance(seconds=5)
    await wait_job(client, "new")
    cursor = wire(clock.now() - timedelta(seconds=1))

    assert await list_keys(client, cursor=cursor) == ["old"]
    assert await list_keys(client, cursor=cursor.replace("Z", "+00:00")) == ["old"]
    assert await list_keys(client, cursor="") == ["new", "old"]
    assert await list_keys(client, cursor="0001-01-01T00:00:00Z") == []
    assert await list_keys(client, cursor="9999-12-31T23:59:59.999999999Z") == ["new", "old"]


# --- Get event trigger statistics ----------------------------------------------------------------


async def test_stats_seed_request_with_no_triggers_is_all_zero(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events/stats")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "total_count": 0,
        "waiting_count": 0,
        "received_count": 0,
        "timed_out_count": 0,
        "canceled_count": 0,
        "avg_wait_duration_secs": 0.0,
    }
    assert isinstance(response.json()["avg_wait_duration_secs"], float)


async def test_stats_counts_each_status_and_averages_received_waits(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "fast")
    await wait_job(client, "slow")
    await wait_job(client, "expiring", 5)
    await wait_job(client, "canceled")
    await wait_job(client, "waiting", 3600)
    clock.advance(seconds=2)
    assert (await client.post("/v1/events/fast/send", json={"payload": 1})).status_code == 200
    assert (await client.delete("/v1/events/canceled")).status_code == 200
    clock.advance(seconds=5, milliseconds=500)
    assert (await client.post("/v1/events/slow/send")).status_code == 200

    async def timed_out() -> bool:
        return await status_of(client, "expiring") == "timed_out"

    await wait_until(timed_out)
    stats = (await client.get("/v1/events/stats")).json()

    assert stats == {
        "total_count": 5,
        "waiting_count": 1,
        "received_count": 2,
        "timed_out_count": 1,
        "canceled_count": 1,
        "avg_wait_duration_secs": pytest.approx((2 + 7.5) / 2),
    }
    assert isinstance(stats["avg_wait_duration_secs"], float)


async def test_stats_count_only_the_keys_project(client: httpx.AsyncClient) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "B"})).json()["data"]
    other = await client.post(
        "/api/v1/keys", json={"name": "b", "scopes": ["admin"], "projectId": project["id"]}
    )
    await wait_job(client, "mine")

    stats = await client.get("/v1/events/stats", headers={"x-api-key": other.json()["data"]["key"]})

    assert stats.json()["total_count"] == 0


# --- Get event trigger by key --------------------------------------------------------------------


async def test_get_seed_request_returns_the_trigger(client: httpx.AsyncClient) -> None:
    created = await wait_job(client, "string", request_payload={"orderId": "o1"})

    response = await client.get("/v1/events/string")

    assert response.status_code == 200, response.text
    assert response.json() == created
    assert_trigger(response.json(), event_key="string", status="waiting")


async def test_get_with_bearer_key(client: httpx.AsyncClient) -> None:
    await wait_job(client, "string")

    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as bearer:
        response = await bearer.get(
            "/v1/events/string", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )

    assert response.status_code == 200, response.text
    assert_trigger(response.json(), event_key="string")


async def test_get_of_a_workflow_step_wait_shows_its_run_step_and_payload(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, waiting_workflow())
    run_id, trigger = await start_waiting_run(client, "o7")
    run = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]

    assert_trigger(
        trigger,
        event_key="approval-o7",
        source_type="workflow_step",
        workflow_run_id=run_id,
        status="waiting",
        request_payload={"orderId": "o7"},
        timeout_secs=3600,
    )
    assert run["status"] == "waiting"


async def test_get_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events/string")

    assert_error(response, 404, "not_found", "event trigger not found")


async def test_get_another_projects_key_is_404(client: httpx.AsyncClient) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "B"})).json()["data"]
    other = await client.post(
        "/api/v1/keys", json={"name": "b", "scopes": ["admin"], "projectId": project["id"]}
    )
    await wait_job(client, "secret-key")
    headers = {"x-api-key": other.json()["data"]["key"]}

    got = await client.get("/v1/events/secret-key", headers=headers)
    sent = await client.post("/v1/events/secret-key/send", headers=headers)
    canceled = await client.delete("/v1/events/secret-key", headers=headers)
    by_prefix = await client.post("/v1/events/prefix/secret/send", headers=headers)

    assert_error(got, 404, "not_found", "event trigger not found")
    assert_error(sent, 404, "not_found", "event trigger not found")
    assert_error(canceled, 404, "not_found", "event trigger not found")
    assert by_prefix.json() == {"resolved": 0, "triggers": []}
    assert (await client.get("/v1/events/secret-key")).json()["status"] == "waiting"


# --- Cancel a waiting event trigger --------------------------------------------------------------


async def test_cancel_seed_request_returns_the_canceled_trigger(
    client: httpx.AsyncClient,
) -> None:
    created = await wait_job(client, "string", request_payload=[1, 2])

    response = await client.delete("/v1/events/string")
    again = await client.get("/v1/events/string")

    assert response.status_code == 200, response.text
    assert_trigger(
        response.json(),
        id=created["id"],
        event_key="string",
        status="canceled",
        error="canceled by user",
        request_payload=[1, 2],
        requested_at=created["requested_at"],
    )
    assert again.json() == response.json()


async def test_cancel_not_waiting_is_409_and_unknown_404(client: httpx.AsyncClient) -> None:
    await wait_job(client, "done")
    await client.post("/v1/events/done/send", json={"payload": True})
    await wait_job(client, "gone")
    await client.delete("/v1/events/gone")

    received = await client.delete("/v1/events/done")
    canceled = await client.delete("/v1/events/gone")
    unknown = await client.delete("/v1/events/never")

    assert_error(received, 409, "conflict", "event trigger is not in waiting state")
    assert_error(canceled, 409, "conflict", "event trigger is not in waiting state")
    assert_error(unknown, 404, "not_found", "event trigger not found")
    assert (await client.get("/v1/events/done")).json()["status"] == "received"


async def test_cancel_of_a_workflow_wait_fails_the_run(client: httpx.AsyncClient) -> None:
    await create_workflow(client, waiting_workflow())
    run_id, trigger = await start_waiting_run(client, "o9")

    response = await client.delete("/v1/events/approval-o9")
    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]

    assert_trigger(response.json(), id=trigger["id"], status="canceled", workflow_run_id=run_id)
    assert ended["status"] == "failed"
    assert ended["steps"][0]["status"] == "canceled"


# --- Send an event to a waiting trigger ----------------------------------------------------------


async def test_send_seed_request_with_empty_object_resolves_with_null(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    sender = await make_key(client, "events:write", "runs:read")
    created = await wait_job(client, "string", 120)
    clock.advance(seconds=3)

    response = await client.post(
        "/v1/events/string/send",
        content=b"{}",
        headers={**JSON_HEADERS, "x-api-key": sender["key"]},
    )

    assert response.status_code == 200, response.text
    assert_trigger(
        response.json(),
        id=created["id"],
        event_key="string",
        status="received",
        response_payload=None,
        received_at=wire(clock.now()),
        requested_at=created["requested_at"],
        timeout_secs=120,
        sent_by=f"api-key:{sender['id']}",
    )
    assert (await client.get("/v1/events/string")).json() == response.json()


async def test_send_with_empty_body_payload_is_null(client: httpx.AsyncClient) -> None:
    await wait_job(client, "empty")

    response = await client.post("/v1/events/empty/send", content=b"")

    assert response.status_code == 200, response.text
    assert_trigger(response.json(), status="received", response_payload=None)


async def test_send_any_json_payload_is_the_response_payload(client: httpx.AsyncClient) -> None:
    payloads: list[Any] = [{"approved": True, "by": "ann"}, [1, "two", None], "", 0, 1.5, False]
    for n, payload in enumerate([*payloads, None]):
        await wait_job(client, f"any-{n}")

        response = await client.post(f"/v1/events/any-{n}/send", json={"payload": payload})

        assert response.status_code == 200, response.text
        assert_trigger(response.json(), status="received", response_payload=payload)


async def test_send_with_bearer_key_and_form_content_type(client: httpx.AsyncClient) -> None:
    sender = await make_key(client, "events:write")
    await wait_job(client, "bearer")

    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as bearer:
        response = await bearer.post(
            "/v1/events/bearer/send",
            content=b'{"payload": {"ok": 1}}',
            headers={
                "Authorization": f"Bearer {sender['key']}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    assert response.status_code == 200, response.text
    assert_trigger(response.json(), response_payload={"ok": 1}, sent_by=f"api-key:{sender['id']}")


async def test_send_resends_equal_payload_200_other_payload_409_unknown_404(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "twice")
    first = await client.post("/v1/events/twice/send", json={"payload": {"a": 1, "b": [1]}})
    clock.advance(seconds=10)

    again = await client.post("/v1/events/twice/send", json={"payload": {"b": [1.0], "a": 1}})
    other = await client.post("/v1/events/twice/send", json={"payload": {"a": 2}})
    unknown = await client.post("/v1/events/nobody/send", json={"payload": 1})

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert_error(other, 409, "conflict", "event trigger is not in waiting state")
    assert_error(unknown, 404, "not_found", "event trigger not found")


async def test_send_idempotency_key_header_replays_the_first_send(
    client: httpx.AsyncClient,
) -> None:
    await wait_job(client, "idem")
    headers = {"Idempotency-Key": "send-1"}

    first = await client.post("/v1/events/idem/send", json={"payload": 1}, headers=headers)
    replay = await client.post("/v1/events/idem/send", json={"payload": 2}, headers=headers)
    other_key = await client.post(
        "/v1/events/idem/send", json={"payload": 2}, headers={"Idempotency-Key": "send-2"}
    )
    no_key = await client.post("/v1/events/idem/send", json={"payload": 2})

    assert first.status_code == 200, first.text
    assert replay.status_code == 200, replay.text
    assert replay.json() == first.json()
    assert replay.json()["response_payload"] == 1
    assert_error(other_key, 409, "conflict", "event trigger is not in waiting state")
    assert_error(no_key, 409, "conflict", "event trigger is not in waiting state")


async def test_send_to_canceled_or_timed_out_trigger_is_409(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "canceled")
    await client.delete("/v1/events/canceled")
    await wait_job(client, "late", 1)
    clock.advance(seconds=2)

    async def timed_out() -> bool:
        return await status_of(client, "late") == "timed_out"

    await wait_until(timed_out)

    for key in ("canceled", "late"):
        response = await client.post(f"/v1/events/{key}/send", json={"payload": None})
        assert_error(response, 409, "conflict", "event trigger is not in waiting state")


async def test_send_resumes_the_waiting_run_with_the_payload(client: httpx.AsyncClient) -> None:
    await create_workflow(client, waiting_workflow())
    run_id, trigger = await start_waiting_run(client, "o2")

    sent = await client.post("/v1/events/approval-o2/send", json={"payload": {"ok": True}})
    ended = (await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})).json()["data"]

    assert_trigger(
        sent.json(),
        id=trigger["id"],
        source_type="workflow_step",
        workflow_run_id=run_id,
        workflow_step_run_id=trigger["workflow_step_run_id"],
        status="received",
        request_payload={"orderId": "o2"},
        response_payload={"ok": True},
    )
    assert ended["status"] == "completed"
    assert ended["output"] == {"ok": True}


async def test_send_body_that_is_not_a_json_object_is_400(client: httpx.AsyncClient) -> None:
    await wait_job(client, "strict")
    for body in [
        b"not json",
        b"[1, 2]",
        b'"payload"',
        b"42",
        b'{"payload": NaN}',
        b'{"payload": 1',
    ]:
        response = await client.post("/v1/events/strict/send", content=body, headers=JSON_HEADERS)
        assert_error(response, 400, "bad_request", context=body)
    assert (await client.get("/v1/events/strict")).json()["status"] == "waiting"


async def test_send_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    await wait_job(client, "big")
    body = b'{"payload": "' + b"x" * (1024 * 1024) + b'"}'

    response = await client.post("/v1/events/big/send", content=body, headers=JSON_HEADERS)

    error = assert_error(response, 413, "bad_request")
    assert "larger" in error["message"]
    assert (await client.get("/v1/events/big")).json()["status"] == "waiting"


# --- Send an event to all waiting triggers matching a prefix -------------------------------------


async def test_prefix_send_seed_request_resolves_every_waiting_match(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "string-1")
    await wait_job(client, "string-2")
    await wait_job(client, "string-done")
    await client.delete("/v1/events/string-done")
    await wait_job(client, "other-string")
    clock.advance(seconds=1)

    response = await client.post(
        "/v1/events/prefix/string/send", content=b"{}", headers=JSON_HEADERS
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"resolved", "triggers"}
    assert body["resolved"] == 2
    assert sorted(item["event_key"] for item in body["triggers"]) == ["string-1", "string-2"]
    for item in body["triggers"]:
        assert_trigger(
            item, status="received", response_payload=None, received_at=wire(clock.now())
        )
    assert (await client.get("/v1/events/other-string")).json()["status"] == "waiting"
    assert (await client.get("/v1/events/string-done")).json()["status"] == "canceled"


async def test_prefix_send_with_payload_and_slashes_and_wildcards(
    client: httpx.AsyncClient,
) -> None:
    await wait_job(client, "orders/42/approve")
    await wait_job(client, "orders/42/ship")
    await wait_job(client, "orders/420/approve")
    await wait_job(client, "a%b_c")
    await wait_job(client, "axbxc")

    orders = await client.post("/v1/events/prefix/orders/42/send", json={"payload": {"n": 1}})
    slash = await client.post("/v1/events/prefix/orders%2F42%2F/send", json={"payload": 2})
    wildcard = await client.post("/v1/events/prefix/a%25b_/send", json={"payload": 3})

    assert orders.json()["resolved"] == 3
    assert [item["response_payload"] for item in orders.json()["triggers"]] == [{"n": 1}] * 3
    assert slash.json() == {"resolved": 0, "triggers": []}
    assert [item["event_key"] for item in wildcard.json()["triggers"]] == ["a%b_c"]
    assert (await client.get("/v1/events/axbxc")).json()["status"] == "waiting"


async def test_prefix_send_with_no_match_is_0_and_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events/prefix/nothing/send", json={"payload": 1})

    assert response.status_code == 200, response.text
    assert response.json() == {"resolved": 0, "triggers": []}


async def test_prefix_of_512_characters_is_accepted_and_513_is_400(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.post(f"/v1/events/prefix/{'p' * 512}/send")
    too_long = await client.post(f"/v1/events/prefix/{'p' * 513}/send")
    control = await client.post("/v1/events/prefix/a%01/send")

    assert ok.json() == {"resolved": 0, "triggers": []}
    assert_error(too_long, 400, "bad_request")
    assert_error(control, 400, "bad_request")


# --- Purge terminal event triggers ---------------------------------------------------------------


async def test_purge_seed_request_with_nothing_to_purge(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events/purge", content=b'{    "older_than_days": 1  }', headers=JSON_HEADERS
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 0, "dry_run": False, "would_delete": 0}


async def test_purge_deletes_ended_triggers_older_than_the_days_never_waiting(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await wait_job(client, "received")
    await client.post("/v1/events/received/send", json={"payload": 1})
    await wait_job(client, "canceled")
    await client.delete("/v1/events/canceled")
    await wait_job(client, "expired", 1)
    await wait_job(client, "still-waiting", 366 * 86_400)
    clock.advance(seconds=2)

    async def expired() -> bool:
        return await status_of(client, "expired") == "timed_out"

    await wait_until(expired)
    clock.advance(days=1)
    await wait_job(client, "recent")
    await client.delete("/v1/events/recent")
    clock.advance(seconds=1)

    dry = await client.post("/v1/events/purge", json={"older_than_days": 1, "dry_run": True})
    after_dry = await client.get("/v1/events/stats")
    purged = await client.post("/v1/events/purge", json={"older_than_days": 1, "dry_run": False})
    again = await client.post("/v1/events/purge", json={"older_than_days": 1})

    assert dry.status_code == 200, dry.text
    assert dry.json() == {"deleted": 0, "dry_run": True, "would_delete": 3}
    assert after_dry.json()["total_count"] == 5
    assert purged.json() == {"deleted": 3, "dry_run": False, "would_delete": 0}
    assert again.json() == {"deleted": 0, "dry_run": False, "would_delete": 0}
    assert sorted(await list_keys(client)) == ["recent", "still-waiting"]
    assert_error(await client.get("/v1/events/received"), 404, "not_found")


async def test_purge_of_one_project_leaves_the_other(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    project = (await client.post("/api/v1/projects", json={"name": "B"})).json()["data"]
    other = await client.post(
        "/api/v1/keys", json={"name": "b", "scopes": ["admin"], "projectId": project["id"]}
    )
    await wait_job(client, "mine")
    await client.delete("/v1/events/mine")
    clock.advance(days=3)

    purged = await client.post(
        "/v1/events/purge",
        json={"older_than_days": 1},
        headers={"x-api-key": other.json()["data"]["key"]},
    )

    assert purged.json() == {"deleted": 0, "dry_run": False, "would_delete": 0}
    assert await list_keys(client) == ["mine"]


async def test_purge_older_than_days_outside_1_to_36500_is_400(client: httpx.AsyncClient) -> None:
    for body in [
        {},
        {"older_than_days": 0},
        {"older_than_days": -1},
        {"older_than_days": 36501},
        {"older_than_days": 1.5},
        {"older_than_days": "7"},
        {"older_than_days": True},
        {"older_than_days": None},
        {"older_than_days": 2**62},
    ]:
        response = await client.post("/v1/events/purge", json=body)

        assert_error(response, 400, "bad_request", "older_than_days must be >= 1", context=body)


async def test_purge_beyond_64_bit_days_or_nul_cursor_is_400_never_500(
    client: httpx.AsyncClient,
) -> None:
    days = await client.post(
        "/v1/events/purge", content=b'{"older_than_days": 1' + b"0" * 30 + b"}"
    )
    cursor = await client.get("/v1/events", params={"cursor": "2024\u0000"})

    assert_error(days, 400, "bad_request")
    assert_error(cursor, 400, "bad_request")


async def test_purge_accepts_36500_days_and_empty_body_is_400(client: httpx.AsyncClient) -> None:
    most = await client.post("/v1/events/purge", json={"older_than_days": 36500, "dry_run": True})
    empty = await client.post("/v1/events/purge", content=b"")

    assert most.json() == {"deleted": 0, "dry_run": True, "would_delete": 0}
    assert_error(empty, 400, "bad_request", "older_than_days must be >= 1")


async def test_purge_dry_run_not_a_boolean_is_400(client: httpx.AsyncClient) -> None:
    for dry_run in ["true", 1, None, []]:
        response = await client.post(
            "/v1/events/purge", json={"older_than_days": 1, "dry_run": dry_run}
        )

        assert_error(response, 400, "bad_request", context=dry_run)


# --- POST /v1/events: a standalone wait ----------------------------------------------------------


async def test_create_wait_returns_201_and_the_waiting_job_trigger(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    response = await client.post(
        "/v1/events",
        json={"event_key": "job-1", "timeout_secs": 90, "request_payload": {"q": "?"}},
    )

    assert response.status_code == 201, response.text
    assert_trigger(
        response.json(),
        event_key="job-1",
        source_type="job_run",
        status="waiting",
        request_payload={"q": "?"},
        timeout_secs=90,
        requested_at=wire(clock.now()),
        expires_at=wire(clock.now() + timedelta(seconds=90)),
    )


async def test_create_wait_on_a_waiting_key_is_409_and_after_it_ended_201(
    client: httpx.AsyncClient,
) -> None:
    first = await wait_job(client, "again")

    taken = await client.post("/v1/events", json={"event_key": "again", "timeout_secs": 5})
    await client.post("/v1/events/again/send", json={"payload": 1})
    reopened = await client.post("/v1/events", json={"event_key": "again", "timeout_secs": 5})
    got = await client.get("/v1/events/again")

    assert_error(taken, 409, "conflict")
    assert reopened.status_code == 201, reopened.text
    assert reopened.json()["id"] != first["id"]
    assert got.json()["id"] == reopened.json()["id"]


async def test_create_wait_bad_event_key_is_400(client: httpx.AsyncClient) -> None:
    for key in [
        "",
        "k" * 513,
        "a\x00b",
        "line\nbreak",
        "tab\there",
        "bell\x07",
        "del\x7f",
        "c1\x85",
    ]:
        response = await client.post("/v1/events", json={"event_key": key, "timeout_secs": 5})
        assert_error(response, 400, "bad_request", context=key)
    assert await list_keys(client) == []


async def test_create_wait_key_of_512_characters_is_201(client: httpx.AsyncClient) -> None:
    key = "k" * 512

    created = await client.post("/v1/events", json={"event_key": key, "timeout_secs": 5})
    got = await client.get(f"/v1/events/{key}")

    assert created.status_code == 201, created.text
    assert got.json()["event_key"] == key


async def test_create_wait_bad_fields_are_400(client: httpx.AsyncClient) -> None:
    for body in [
        {"timeout_secs": 5},
        {"event_key": 5, "timeout_secs": 5},
        {"event_key": None, "timeout_secs": 5},
        {"event_key": "k"},
        {"event_key": "k", "timeout_secs": "5"},
        {"event_key": "k", "timeout_secs": True},
        {"event_key": "k", "timeout_secs": 0},
        {"event_key": "k", "timeout_secs": -5},
        {"event_key": "k", "timeout_secs": 10**30},
        {"event_key": "k", "timeout_secs": 1e308},
    ]:
        response = await client.post("/v1/events", json=body)
        assert_error(response, 400, "bad_request", context=body)
    assert await list_keys(client) == []


# --- scopes and authentication ------------------------------------------------------------------


async def test_read_only_key_reads_but_may_not_change_triggers(client: httpx.AsyncClient) -> None:
    reader = {"x-api-key": (await make_key(client, "runs:read"))["key"]}
    await wait_job(client, "guarded")

    reads = [
        await client.get("/v1/events", headers=reader),
        await client.get("/v1/events/stats", headers=reader),
        await client.get("/v1/events/guarded", headers=reader),
    ]
    writes = [
        await client.post("/v1/events/guarded/send", json={"payload": 1}, headers=reader),
        await client.post("/v1/events/prefix/guard/send", json={}, headers=reader),
        await client.delete("/v1/events/guarded", headers=reader),
        await client.post("/v1/events/purge", json={"older_than_days": 1}, headers=reader),
        await client.post("/v1/events/purge", json={}, headers=reader),
        await client.post("/v1/events", json={"event_key": "x", "timeout_secs": 5}, headers=reader),
        await client.post("/v1/events", json={}, headers=reader),
    ]

    assert [r.status_code for r in reads] == [200, 200, 200]
    for response in writes:
        assert_error(response, 403, "forbidden")
    assert (await client.get("/v1/events/guarded")).json()["status"] == "waiting"
    assert await list_keys(client) == ["guarded"]


async def test_events_write_key_may_not_read(client: httpx.AsyncClient) -> None:
    writer = {"x-api-key": (await make_key(client, "events:write"))["key"]}
    await wait_job(client, "hidden")

    for path in ("/v1/events", "/v1/events/stats", "/v1/events/hidden"):
        assert_error(await client.get(path, headers=writer), 403, "forbidden")


async def test_no_or_unknown_key_is_401(server: ThreadedServer) -> None:
    routes = [
        ("GET", "/v1/events"),
        ("GET", "/v1/events/stats"),
        ("GET", "/v1/events/string"),
        ("DELETE", "/v1/events/string"),
        ("POST", "/v1/events/string/send"),
        ("POST", "/v1/events/prefix/string/send"),
        ("POST", "/v1/events/purge"),
        ("POST", "/v1/events"),
    ]
    keys: list[dict[str, str]] = [
        {},
        {"x-api-key": "fgk_unknown"},
        {"Authorization": "Bearer fgk_unknown"},
        {"x-api-key": ""},
        {"Authorization": f"Basic {ADMIN_KEY}"},
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        for method, path in routes:
            for headers in keys:
                response = await anonymous.request(method, path, headers=headers, json={})
                assert_error(response, 401, "authentication_required", context=(path, headers))


# --- errors on /v1 -------------------------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_in_straits_shape(
    client: httpx.AsyncClient,
) -> None:
    cases = [
        ("GET", "/v1", 404, "not_found"),
        ("POST", "/v1", 404, "not_found"),
        ("GET", "/v1/", 404, "not_found"),
        ("GET", "/v1/nothing", 404, "not_found"),
        ("GET", "/v1/events/", 400, "bad_request"),
        ("POST", "/v1/runs", 404, "not_found"),
        ("PUT", "/v1/events", 405, "bad_request"),
        ("PATCH", "/v1/events/string", 405, "bad_request"),
        ("GET", "/v1/events/purge", 404, "not_found"),
        ("DELETE", "/v1/events/stats", 404, "not_found"),
        ("PUT", "/v1/events/string/send", 405, "bad_request"),
    ]
    for method, path, status, code in cases:
        response = await client.request(method, path)
        assert_error(response, status, code, context=(method, path))


# --- hostile input -------------------------------------------------------------------------------


async def test_nul_in_the_key_is_400(client: httpx.AsyncClient) -> None:
    await wait_job(client, "a")
    for method in ("GET", "DELETE", "POST"):
        path = "/v1/events/a%00b" + ("/send" if method == "POST" else "")
        assert_error(await client.request(method, path), 400, "bad_request", context=method)
    assert (await client.get("/v1/events/a")).json()["status"] == "waiting"


async def test_undecodable_key_is_never_a_500(client: httpx.AsyncClient) -> None:
    for path in ["/v1/events/%ED%A0%80", "/v1/events/%FF%FE", "/v1/events/%"]:
        response = await client.get(path)

        assert response.status_code in (400, 404), response.text
        assert_error(
            response,
            response.status_code,
            "bad_request" if response.status_code == 400 else "not_found",
        )


async def test_unicode_and_reserved_characters_in_keys_round_trip(
    client: httpx.AsyncClient,
) -> None:
    for key in ["ключ-✓", "注文/承認", "emoji-🎉", "a b", "q?x=1&y", "hash#1"]:
        path = f"/v1/events/{quote(key, safe='/')}"
        created = await wait_job(client, key)

        got = await client.get(path)
        sent = await client.post(f"{path}/send", json={"payload": key})

        assert got.status_code == 200, got.text
        assert got.json() == created
        assert_trigger(sent.json(), event_key=key, status="received", response_payload=key)


async def test_keys_with_slashes_reach_their_own_trigger(client: httpx.AsyncClient) -> None:
    await wait_job(client, "orders/42/approval")
    await wait_job(client, "orders/42/approval/send")
    await wait_job(client, "x/stats")

    got = await client.get("/v1/events/orders/42/approval")
    got_send_key = await client.get("/v1/events/orders/42/approval/send")
    sent = await client.post("/v1/events/orders/42/approval/send/send", json={"payload": 1})
    stats_key = await client.delete("/v1/events/x/stats")

    assert got.json()["event_key"] == "orders/42/approval"
    assert got_send_key.json()["event_key"] == "orders/42/approval/send"
    assert (sent.json()["event_key"], sent.json()["status"]) == (
        "orders/42/approval/send",
        "received",
    )
    assert (await client.get("/v1/events/orders/42/approval")).json()["status"] == "waiting"
    assert (stats_key.json()["event_key"], stats_key.json()["status"]) == ("x/stats", "canceled")


async def test_create_wait_hostile_bodies_are_400(client: httpx.AsyncClient) -> None:
    for body in [
        b'{"event_key": "\\ud800", "timeout_secs": 5}',
        b'{"event_key": "k", "timeout_secs": 5, "request_payload": "\\u0000"}',
        b'{"event_key": "k", "timeout_secs": 99999999999999999999999}',
        b"[]",
        b"null",
        b"\xff\xfe",
    ]:
        response = await client.post("/v1/events", content=body, headers=JSON_HEADERS)

        assert_error(response, 400, "bad_request", context=body)
    assert await list_keys(client) == []


async def test_payload_over_the_output_limit_is_413_and_nothing_stored(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    await wait_job(client, "limit")
    body = b'{"payload": "' + b"x" * server_settings.max_output_bytes + b'"}'

    response = await client.post("/v1/events/limit/send", content=body, headers=JSON_HEADERS)

    assert response.status_code == 413, response.text
    assert_error(response, 413, "bad_request")
    assert (await client.get("/v1/events/limit")).json()["status"] == "waiting"


async def test_key_of_thousands_of_characters_in_the_path_is_400(
    client: httpx.AsyncClient,
) -> None:
    long_key = "k" * 5000

    for method, path in (
        ("GET", f"/v1/events/{long_key}"),
        ("DELETE", f"/v1/events/{long_key}"),
        ("POST", f"/v1/events/{long_key}/send"),
        ("POST", f"/v1/events/prefix/{long_key}/send"),
    ):
        response = await client.request(method, path)
        assert_error(response, 400, "bad_request", context=(method, path[:30]))


async def test_send_bad_buffer_secs_is_400_in_straits_shape(client: httpx.AsyncClient) -> None:
    await wait_job(client, "buffered")

    for value in ("abc", "-5", "nan", "inf", "1e400", str(8 * 86_400)):
        response = await client.post(
            "/v1/events/nobody-waits/send", params={"buffer_secs": value}, json={"payload": 1}
        )
        assert_error(response, 400, "bad_request", context=value)
    assert (await client.get("/v1/events/buffered")).json()["status"] == "waiting"
    assert_error(await client.get("/v1/events/nobody-waits"), 404, "not_found")


async def test_sends_over_the_keys_rate_limit_are_429_rate_limited(
    client: httpx.AsyncClient,
) -> None:
    limited = await client.post(
        "/api/v1/keys",
        json={"name": "slow", "scopes": ["events:write", "runs:read"], "rateLimitPerMinute": 2},
    )
    assert limited.status_code == 201, limited.text
    headers = {"x-api-key": limited.json()["data"]["key"]}
    await wait_job(client, "rl")

    first = await client.post("/v1/events/rl/send", json={"payload": 1}, headers=headers)
    second = await client.post("/v1/events/rl/send", json={"payload": 1}, headers=headers)
    third = await client.post("/v1/events/rl/send", json={"payload": 1}, headers=headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert_error(third, 429, "rate_limited")
    assert int(third.headers["retry-after"]) >= 0
    assert third.headers["ratelimit-limit"] == "2"
