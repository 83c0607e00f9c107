"""docs/triggers.md's recipes (issue 8 item 8), run as a reader runs them: each block marked
``<!-- example: NAME -->`` goes through ``bash -euo pipefail`` against a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowgate.settings import Settings
from tests import recipes
from tests.conftest import ThreadedServer
from tests.pg import free_port

DOC = recipes.DOCS / "triggers.md"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    port = free_port()
    return make_settings(port=port, public_url=f"http://127.0.0.1:{port}")


@pytest.fixture
def server(server_settings: Settings) -> Iterator[ThreadedServer]:
    from flowgate.api.app import create_app

    threaded = ThreadedServer(create_app(server_settings))
    # The recipes call the trigger's `url`, so the server listens where FLOWGATE_PUBLIC_URL points.
    threaded.server.config.port = server_settings.port
    with threaded as running:
        yield running


async def _run_example(name: str, server: ThreadedServer) -> list[Any]:
    done = await recipes.run_example(DOC, name, server.url)
    return recipes.json_documents(done.stdout)


def _next_2am_berlin_utc(now: datetime) -> str:
    """The next 02:00 in Berlin as the API renders it; on the spring-forward day 02:00 does not
    exist and zoneinfo's fold=0 gives 03:00 CEST, as docs/workflows.md promises."""
    local = now.astimezone(BERLIN)
    due = datetime.combine(local.date(), time(2), tzinfo=BERLIN)
    if due <= local:
        due = datetime.combine(local.date() + timedelta(days=1), time(2), tzinfo=BERLIN)
    return due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_docs_github_webhook_recipe_completes_a_signed_push(server: ThreadedServer) -> None:
    *_, run = await _run_example("github-webhook", server)

    data = run["data"]
    assert (data["status"], data["source"], data["workflowId"]) == (
        "completed",
        "webhook",
        "wf_github_push",
    )
    assert data["output"] == {
        "event": "push",
        "repository": "octo-org/app",
        "branch": "main",
        "pusher": "ada",
    }


async def test_docs_stripe_webhook_recipe_completes_a_signed_event(server: ThreadedServer) -> None:
    *_, run = await _run_example("stripe-webhook", server)

    data = run["data"]
    assert (data["status"], data["source"], data["workflowId"]) == (
        "completed",
        "webhook",
        "wf_stripe_payment",
    )
    assert data["output"] == {
        "type": "payment_intent.succeeded",
        "paymentIntent": "pi_1",
        "amount": 2000,
    }


async def test_docs_nightly_schedule_recipe_shows_next_2am_berlin(server: ThreadedServer) -> None:
    before = _next_2am_berlin_utc(datetime.now(UTC))
    *_, listed = await _run_example("nightly-schedule", server)
    after = _next_2am_berlin_utc(datetime.now(UTC))

    [trigger] = listed["data"]
    assert {k: trigger[k] for k in ("type", "workflowId", "enabled", "source", "url")} == {
        "type": "schedule",
        "workflowId": "wf_nightly_report",
        "enabled": True,
        "source": "definition",
        "url": None,
    }
    assert trigger["nextRunAt"] in {before, after}
