"""What none of the peers has (DESIGN §11): the early-event buffer (``?buffer_secs=`` or the
project's ``eventBufferSecs``), ``wait_for_event: {anyOf: [...]}`` and ``timeoutOutput``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import wait_until
from tests.integration.conftest import create_workflow

RACES = 100


def waiting_workflow(workflow_id: str, **config: Any) -> dict[str, Any]:
    """A wait (``config``), then a step that shows what the wait's output was."""
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "wait", "type": "wait_for_event", "config": {"timeoutSecs": 3600, **config}},
            {
                "id": "after",
                "type": "transform",
                "config": {"mapping": {"got": "{{steps.wait.output}}"}},
            },
        ],
    }


async def _start(client: httpx.AsyncClient, workflow_id: str, **input_: Any) -> str:
    started = await client.post(f"/api/v1/workflows/{workflow_id}/run", json={"input": input_})
    assert started.status_code == 201, started.text
    run_id: str = started.json()["data"]["runId"]
    return run_id


async def _ended(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/runs/{run_id}", params={"waitSecs": 10})
    run: dict[str, Any] = response.json()["data"]
    assert run["status"] not in ("pending", "running", "waiting", "queued"), run
    return run


async def _trigger(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.get(f"/v1/events/{key}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _all_waiting(client: httpx.AsyncClient, *keys: str) -> None:
    async def waiting() -> bool:
        found = [await client.get(f"/v1/events/{key}") for key in keys]
        return all(r.status_code == 200 and r.json()["status"] == "waiting" for r in found)

    await wait_until(waiting)


async def _wait(client: httpx.AsyncClient, key: str, timeout_secs: float = 60) -> dict[str, Any]:
    created = await client.post("/v1/events", json={"event_key": key, "timeout_secs": timeout_secs})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _wire(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _now() -> datetime:
    return datetime.now(UTC)


# -- the early-event buffer -------------------------------------------------------------------


async def test_a_send_nobody_waits_for_is_buffered_with_buffer_secs(
    client: httpx.AsyncClient,
) -> None:
    before = _now().replace(microsecond=0)
    sent = await client.post(
        "/v1/events/early-1/send", params={"buffer_secs": 300}, json={"payload": {"ok": 1}}
    )
    after = _now()

    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert set(body) == {"buffered", "event_key", "expires_at"}
    assert (body["buffered"], body["event_key"]) == (True, "early-1")
    assert body["expires_at"].endswith("Z")
    assert before + timedelta(seconds=300) <= _wire(body["expires_at"])
    assert _wire(body["expires_at"]) <= after + timedelta(seconds=300)
    assert (await client.get("/v1/events/early-1")).status_code == 404


async def test_a_wait_for_event_step_takes_a_buffered_event_at_once(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, waiting_workflow("wf_early", eventKey="order-{{input.id}}"))
    sent = await client.post(
        "/v1/events/order-7/send", params={"buffer_secs": 300}, json={"payload": {"paid": True}}
    )

    run = await _ended(client, await _start(client, "wf_early", id=7))
    trigger = await _trigger(client, "order-7")

    assert sent.status_code == 202
    assert run["status"] == "completed"
    assert run["steps"][0]["output"] == {"paid": True}
    assert run["output"] == {"got": {"paid": True}}
    assert trigger["status"] == "received"
    assert trigger["workflow_run_id"] == run["id"]
    assert trigger["response_payload"] == {"paid": True}
    assert trigger["sent_by"].startswith("api-key:")
    assert trigger["received_at"] == trigger["requested_at"]


async def test_a_standalone_wait_takes_a_buffered_event_at_once(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v1/events/job-early/send", params={"buffer_secs": 60}, json={"payload": 5})

    created = await _wait(client, "job-early")
    second = await _wait(client, "job-early")

    assert (created["status"], created["response_payload"]) == ("received", 5)
    assert created["source_type"] == "job_run"
    assert second["status"] == "waiting"


async def test_a_later_buffered_send_replaces_the_earlier(client: httpx.AsyncClient) -> None:
    for payload in ("first", "second"):
        sent = await client.post(
            "/v1/events/twice/send", params={"buffer_secs": 60}, json={"payload": payload}
        )
        assert sent.status_code == 202

    assert (await _wait(client, "twice"))["response_payload"] == "second"
    assert (await _wait(client, "twice"))["status"] == "waiting"


async def test_a_buffered_send_to_a_received_key_is_answered_not_buffered(
    client: httpx.AsyncClient,
) -> None:
    await _wait(client, "done-key")
    await client.post("/v1/events/done-key/send", json={"payload": "a"})

    again = await client.post(
        "/v1/events/done-key/send", params={"buffer_secs": 60}, json={"payload": "a"}
    )
    other = await client.post(
        "/v1/events/done-key/send", params={"buffer_secs": 60}, json={"payload": "b"}
    )

    assert again.status_code == 200
    assert again.json()["status"] == "received"
    assert other.status_code == 409
    assert (await _wait(client, "done-key"))["status"] == "waiting"


async def test_after_the_window_a_wait_waits_normally(client: httpx.AsyncClient) -> None:
    sent = await client.post(
        "/v1/events/late-key/send", params={"buffer_secs": 0.2}, json={"payload": 1}
    )
    expires = _wire(sent.json()["expires_at"])
    # The server's clock is this machine's: once it has passed expires_at, the window is shut.
    await wait_until(lambda: _now() > expires + timedelta(milliseconds=5))

    created = await _wait(client, "late-key")

    assert sent.status_code == 202
    assert (created["status"], created["response_payload"]) == ("waiting", None)


async def test_a_bad_buffer_secs_is_400_in_straits_shape(client: httpx.AsyncClient) -> None:
    answers = [
        await client.post("/v1/events/k/send", params={"buffer_secs": value}, json={})
        for value in ("-1", "604801", "abc", "nan", "inf")
    ]

    assert [answer.status_code for answer in answers] == [400] * 5
    for answer in answers:
        assert answer.json()["error"]["code"] == "bad_request"
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
    assert answers[0].json()["error"]["message"] == (
        "buffer_secs must be between 0 (do not buffer) and 604800"
    )


async def test_buffer_secs_zero_does_not_buffer(client: httpx.AsyncClient) -> None:
    sent = await client.post("/v1/events/zero/send", params={"buffer_secs": 0}, json={})

    assert sent.status_code == 404
    assert (await _wait(client, "zero"))["status"] == "waiting"


# -- the project default ----------------------------------------------------------------------


async def test_a_project_default_buffers_sends_that_name_no_buffer_secs(
    client: httpx.AsyncClient,
) -> None:
    shown = (await client.get("/api/v1/projects/prj_default")).json()["data"]
    patched = await client.patch("/api/v1/projects/prj_default", json={"eventBufferSecs": 120})
    before = _now().replace(microsecond=0)
    sent = await client.post("/v1/events/by-default/send", json={"payload": "x"})
    after = _now()
    zero = await client.post("/v1/events/not-kept/send", params={"buffer_secs": 0}, json={})
    longer = await client.post("/v1/events/longer/send", params={"buffer_secs": 600}, json={})

    assert shown["eventBufferSecs"] is None
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["eventBufferSecs"] == 120
    assert patched.json()["data"]["runQuotaPerDay"] is None
    got = (await client.get("/api/v1/projects/prj_default")).json()["data"]
    assert got["eventBufferSecs"] == 120
    assert sent.status_code == 202, sent.text
    expires = _wire(sent.json()["expires_at"])
    assert before + timedelta(seconds=120) <= expires <= after + timedelta(seconds=120)
    assert zero.status_code == 404
    assert _wire(longer.json()["expires_at"]) > after + timedelta(seconds=599)
    assert (await _wait(client, "by-default"))["response_payload"] == "x"
    assert (await _wait(client, "not-kept"))["status"] == "waiting"


async def test_clearing_the_project_default_stops_buffering(client: httpx.AsyncClient) -> None:
    await client.patch(
        "/api/v1/projects/prj_default", json={"eventBufferSecs": 60, "runQuotaPerDay": 1000}
    )
    cleared = await client.patch("/api/v1/projects/prj_default", json={"eventBufferSecs": None})
    renamed = await client.patch("/api/v1/projects/prj_default", json={"name": "Renamed"})

    sent = await client.post("/v1/events/cleared/send", json={})

    assert cleared.json()["data"]["eventBufferSecs"] is None
    assert cleared.json()["data"]["runQuotaPerDay"] == 1000
    assert renamed.json()["data"]["eventBufferSecs"] is None
    assert sent.status_code == 404


async def test_the_project_default_is_per_project_and_set_only_by_an_admin(
    client: httpx.AsyncClient,
) -> None:
    project = await client.post("/api/v1/projects", json={"name": "B", "id": "prj_b"})
    made = await client.post(
        "/api/v1/keys",
        json={"name": "b", "scopes": ["admin"], "projectId": "prj_b"},
    )
    b_key = {"x-api-key": made.json()["data"]["key"]}
    by_tenant = await client.patch(
        "/api/v1/projects/prj_b", json={"eventBufferSecs": 60}, headers=b_key
    )
    by_admin = await client.patch("/api/v1/projects/prj_b", json={"eventBufferSecs": 60})

    in_b = await client.post("/v1/events/shared/send", json={}, headers=b_key)
    in_default = await client.post("/v1/events/shared/send", json={})

    assert project.status_code == 201
    assert project.json()["data"]["eventBufferSecs"] is None
    assert by_tenant.status_code == 403
    assert by_admin.json()["data"]["eventBufferSecs"] == 60
    assert in_b.status_code == 202
    assert in_default.status_code == 404


async def test_a_bad_event_buffer_secs_is_400(client: httpx.AsyncClient) -> None:
    answers = [
        await client.patch("/api/v1/projects/prj_default", json={"eventBufferSecs": value})
        for value in (-1, 604_801, "60", 1.5, True)
    ]
    zero = await client.patch("/api/v1/projects/prj_default", json={"eventBufferSecs": 0})

    assert [answer.status_code for answer in answers] == [400] * 5
    assert {answer.json()["error"]["code"] for answer in answers} == {"INVALID_REQUEST"}
    assert zero.json()["data"]["eventBufferSecs"] == 0
    assert (await client.post("/v1/events/zero-default/send", json={})).status_code == 404


# -- races ------------------------------------------------------------------------------------


async def test_a_buffered_event_is_taken_by_exactly_one_of_two_concurrent_waits(
    client: httpx.AsyncClient,
) -> None:
    keys = [f"race-{n}" for n in range(RACES)]
    for key in keys:
        sent = await client.post(
            f"/v1/events/{key}/send", params={"buffer_secs": 300}, json={"payload": key}
        )
        assert sent.status_code == 202

    pairs = await asyncio.gather(
        *(asyncio.gather(_wait(client, key), _wait(client, key)) for key in keys)
    )

    for key, pair in zip(keys, pairs, strict=True):
        statuses = sorted((wait["status"], wait["response_payload"]) for wait in pair)
        assert statuses == [("received", key), ("waiting", None)], (key, pair)


async def test_a_send_racing_a_buffered_consumption_is_taken_once(
    client: httpx.AsyncClient,
) -> None:
    """A buffered event A, then a wait and a second buffered send B at once: either the wait
    took A and B is refused (the key was received, with another payload), or B replaced A and
    the wait took B. Never both, never neither."""
    keys = [f"duel-{n}" for n in range(RACES)]
    for key in keys:
        await client.post(
            f"/v1/events/{key}/send", params={"buffer_secs": 300}, json={"payload": "A"}
        )

    async def duel(key: str) -> tuple[dict[str, Any], httpx.Response]:
        send = client.post(
            f"/v1/events/{key}/send", params={"buffer_secs": 300}, json={"payload": "B"}
        )
        wait, sent = await asyncio.gather(_wait(client, key), send)
        return wait, sent

    results = await asyncio.gather(*(duel(key) for key in keys))
    leftovers = await asyncio.gather(*(_wait(client, key) for key in keys))

    for key, (wait, sent), leftover in zip(keys, results, leftovers, strict=True):
        outcome = (sent.status_code, wait["status"], wait["response_payload"])
        assert outcome in ((409, "received", "A"), (202, "received", "B")), (key, outcome)
        assert leftover["status"] == "waiting", key


# -- anyOf ------------------------------------------------------------------------------------


def _any_of(workflow_id: str = "wf_any", **config: Any) -> dict[str, Any]:
    keys = ["paid-{{input.id}}", "refused-{{input.id}}", "expired-{{input.id}}"]
    return waiting_workflow(workflow_id, anyOf=keys, **config)


async def test_any_of_completes_with_the_key_and_payload_and_cancels_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _any_of())
    run_id = await _start(client, "wf_any", id=1)
    await _all_waiting(client, "paid-1", "refused-1", "expired-1")

    sent = await client.post("/v1/events/refused-1/send", json={"payload": {"why": "no"}})
    run = await _ended(client, run_id)
    late = await client.post("/v1/events/paid-1/send", json={"payload": {}})
    others = [await _trigger(client, key) for key in ("paid-1", "expired-1")]

    assert sent.status_code == 200, sent.text
    assert run["status"] == "completed"
    assert run["steps"][0]["output"] == {"key": "refused-1", "payload": {"why": "no"}}
    assert run["output"] == {"got": {"key": "refused-1", "payload": {"why": "no"}}}
    assert [(t["status"], t["error"]) for t in others] == [
        ("canceled", "another key of the wait was received: refused-1")
    ] * 2
    assert late.status_code == 409
    assert late.json()["error"]["message"] == "event trigger is not in waiting state"


async def test_any_of_keeps_waiting_when_one_key_is_canceled(client: httpx.AsyncClient) -> None:
    await create_workflow(client, _any_of())
    run_id = await _start(client, "wf_any", id=2)
    await _all_waiting(client, "paid-2", "refused-2", "expired-2")

    canceled = await client.delete("/v1/events/expired-2")
    still = await client.get(f"/api/v1/runs/{run_id}")
    others = [(await _trigger(client, key))["status"] for key in ("paid-2", "refused-2")]
    sent = await client.post("/v1/events/paid-2/send", json={"payload": 42})
    run = await _ended(client, run_id)

    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert canceled.json()["error"] == "canceled by user"
    assert still.json()["data"]["status"] == "waiting"
    assert others == ["waiting", "waiting"]
    assert sent.status_code == 200
    assert run["status"] == "completed"
    assert run["steps"][0]["output"] == {"key": "paid-2", "payload": 42}
    assert (await _trigger(client, "expired-2"))["error"] == "canceled by user"
    assert (await _trigger(client, "refused-2"))["status"] == "canceled"


async def test_any_of_with_every_key_canceled_ends_the_step_canceled(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _any_of())
    run_id = await _start(client, "wf_any", id=3)
    keys = ("paid-3", "refused-3", "expired-3")
    await _all_waiting(client, *keys)

    canceled = [(await client.delete(f"/v1/events/{key}")).status_code for key in keys]
    run = await _ended(client, run_id)

    assert canceled == [200, 200, 200]
    assert run["status"] == "failed"
    assert run["steps"][0]["status"] == "canceled"
    assert run["error"]["code"] == "CANCELED"
    assert run["error"]["stepId"] == "wait"
    assert "canceled" in run["error"]["message"]


async def test_any_of_takes_a_buffered_event_for_any_of_its_keys(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(client, _any_of())
    await client.post("/v1/events/expired-4/send", params={"buffer_secs": 60}, json={"payload": 0})

    run = await _ended(client, await _start(client, "wf_any", id=4))
    others = [await _trigger(client, key) for key in ("paid-4", "refused-4")]

    assert run["status"] == "completed"
    assert run["steps"][0]["output"] == {"key": "expired-4", "payload": 0}
    assert [t["status"] for t in others] == ["canceled", "canceled"]


async def test_any_of_that_times_out_continues_with_its_timeout_output(
    client: httpx.AsyncClient,
) -> None:
    config = {"timeoutSecs": 0.3, "onTimeout": "continue", "timeoutOutput": {"key": None}}
    await create_workflow(client, _any_of(**config))

    run = await _ended(client, await _start(client, "wf_any", id=5))
    statuses = [(await _trigger(client, f"{k}-5"))["status"] for k in ("paid", "refused")]

    assert run["status"] == "completed"
    assert run["output"] == {"got": {"key": None}}
    assert statuses == ["timed_out", "timed_out"]


# -- timeoutOutput ----------------------------------------------------------------------------


async def test_a_timed_out_wait_continues_with_its_timeout_output(
    client: httpx.AsyncClient,
) -> None:
    default = {"approved": False, "by": "nobody"}
    wait = {
        "eventKey": "t-1",
        "timeoutSecs": 0.3,
        "onTimeout": "continue",
        "timeoutOutput": default,
    }
    await create_workflow(client, waiting_workflow("wf_default", **wait))

    run = await _ended(client, await _start(client, "wf_default"))
    trigger = await _trigger(client, "t-1")

    assert run["status"] == "completed"
    assert (run["steps"][0]["status"], run["steps"][0]["output"]) == ("completed", default)
    assert run["steps"][1]["status"] == "completed"
    assert run["output"] == {"got": default}
    assert (trigger["status"], trigger["error"]) == ("timed_out", "timed out")


async def test_a_timed_out_wait_with_on_timeout_fail_fails_the_run(
    client: httpx.AsyncClient,
) -> None:
    await create_workflow(
        client, waiting_workflow("wf_strict", eventKey="t-2", timeoutSecs=0.3, onTimeout="fail")
    )

    run = await _ended(client, await _start(client, "wf_strict"))

    assert run["status"] == "failed"
    assert run["steps"][0]["status"] == "timed_out"
    assert run["error"]["code"] == "STEP_TIMEOUT"
    assert run["error"]["stepId"] == "wait"


async def test_timeout_output_without_on_timeout_continue_is_400_when_written(
    client: httpx.AsyncClient,
) -> None:
    without = waiting_workflow("wf_bad_1", eventKey="k", timeoutOutput=1)
    failing = waiting_workflow("wf_bad_2", eventKey="k", onTimeout="fail", timeoutOutput=1)
    await create_workflow(client, waiting_workflow("wf_good", eventKey="k"))
    put = waiting_workflow("wf_good", eventKey="k", timeoutOutput=1)

    answers = [
        await client.post("/api/v1/workflows", json=without),
        await client.post("/api/v1/workflows", json=failing),
        await client.put("/api/v1/workflows/wf_good", json=put),
    ]

    for answer in answers:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "INVALID_REQUEST"
        assert error["details"] == [
            {
                "path": ["steps", 0, "config", "timeoutOutput"],
                "message": "is used only with onTimeout: continue",
            }
        ]


async def test_a_send_with_buffer_secs_to_a_waiting_key_resolves_it(
    client: httpx.AsyncClient,
) -> None:
    await _wait(client, "live-key")

    sent = await client.post(
        "/v1/events/live-key/send", params={"buffer_secs": 60}, json={"payload": "now"}
    )

    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["response_payload"]) == ("received", "now")


async def test_any_of_with_one_key_canceled_then_timed_out_continues_with_its_default(
    client: httpx.AsyncClient,
) -> None:
    """Canceling one key leaves the wait on the others; when those time out, the wait timed
    out (it was never canceled as a whole), so ``onTimeout: continue`` applies."""
    config = {"timeoutSecs": 1.5, "onTimeout": "continue", "timeoutOutput": "default"}
    await create_workflow(client, _any_of(**config))
    run_id = await _start(client, "wf_any", id=6)
    await _all_waiting(client, "paid-6", "refused-6", "expired-6")

    canceled = await client.delete("/v1/events/paid-6")
    run = await _ended(client, run_id)

    assert canceled.status_code == 200
    assert (run["status"], run["output"]) == ("completed", {"got": "default"}), run["error"]


async def test_concurrent_sends_to_two_keys_of_one_any_of_wait_resolve_it_once(
    client: httpx.AsyncClient,
) -> None:
    runs = 40
    await create_workflow(
        client, waiting_workflow("wf_pair", anyOf=["l-{{input.n}}", "r-{{input.n}}"])
    )
    run_ids = [await _start(client, "wf_pair", n=n) for n in range(runs)]
    await _all_waiting(client, *(f"{side}-{n}" for n in range(runs) for side in "lr"))

    sends = await asyncio.gather(
        *(
            asyncio.gather(
                client.post(f"/v1/events/l-{n}/send", json={"payload": "l"}),
                client.post(f"/v1/events/r-{n}/send", json={"payload": "r"}),
            )
            for n in range(runs)
        )
    )

    for n, (left, right) in enumerate(sends):
        codes = (left.status_code, right.status_code)
        assert sorted(codes) == [200, 409], (n, left.text, right.text)
        winner = "l" if left.status_code == 200 else "r"
        run = await _ended(client, run_ids[n])
        assert run["steps"][0]["output"] == {"key": f"{winner}-{n}", "payload": winner}
        statuses = {side: (await _trigger(client, f"{side}-{n}"))["status"] for side in "lr"}
        loser = "r" if winner == "l" else "l"
        assert statuses == {winner: "received", loser: "canceled"}, n


async def test_a_send_racing_the_cancel_of_its_run_is_200_or_409(
    client: httpx.AsyncClient,
) -> None:
    runs = 40
    await create_workflow(client, waiting_workflow("wf_dying", eventKey="d-{{input.n}}"))
    run_ids = [await _start(client, "wf_dying", n=n) for n in range(runs)]
    await _all_waiting(client, *(f"d-{n}" for n in range(runs)))

    sends = await asyncio.gather(
        *(
            asyncio.gather(
                client.post(f"/v1/events/d-{n}/send", json={"payload": n}),
                client.post(f"/api/v1/runs/{run_ids[n]}/cancel"),
            )
            for n in range(runs)
        )
    )

    for n, (sent, _) in enumerate(sends):
        trigger = await _trigger(client, f"d-{n}")
        assert sent.status_code in (200, 409), (n, sent.status_code, sent.text)
        expected = "received" if sent.status_code == 200 else "canceled"
        assert trigger["status"] == expected, n
