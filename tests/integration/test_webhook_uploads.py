"""Multipart bodies on ``/hooks/{token}`` (DESIGN §4, §7): fields and stored files reach the
input, files are served to the project's keys only, and every limit holds while streaming."""

from __future__ import annotations

import hashlib
import hmac
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.clock import FrozenClock
from flowgate.settings import Settings
from tests.conftest import ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow

PUBLIC = "https://flows.example.com"
MAX_UPLOAD = 21_000_000
BOUNDARY = "flowgate-test-boundary"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(public_url=PUBLIC, inbox_prune_secs=0.1, max_upload_bytes=MAX_UPLOAD)


@pytest.fixture
def server(server_settings: Settings, clock: FrozenClock) -> Iterator[ThreadedServer]:
    from flowgate.api.app import create_app
    from flowgate.service.core import build_services

    services = build_services(server_settings, clock=clock)
    with ThreadedServer(create_app(server_settings, services=services)) as running:
        yield running


async def _hook(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    await create_workflow(client, simple_workflow("wf_a"))
    response = await client.post(
        "/api/v1/workflows/wf_a/triggers", json=body or {"type": "webhook"}
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    data["path"] = data["url"].removeprefix(PUBLIC)
    return data


async def _other_key(client: httpx.AsyncClient) -> dict[str, str]:
    project = (await client.post("/api/v1/projects", json={"name": "Other"})).json()["data"]
    created = await client.post(
        "/api/v1/keys",
        json={"name": "other", "scopes": ["admin"], "projectId": project["id"]},
    )
    return {"x-api-key": created.json()["data"]["key"]}


def _uploaded(settings: Settings) -> list[Path]:
    directory = settings.data_dir / "uploads"
    return sorted(directory.iterdir()) if directory.exists() else []


async def _streamed_file(size: int, *, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """One file part of ``size`` bytes, generated as sent so that the client holds no copy."""
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="big"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    block = b"x" * chunk
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def _post_streamed(client: httpx.AsyncClient, path: str, size: int) -> httpx.Response:
    return await client.post(
        path,
        content=_streamed_file(size),
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


async def test_hook_multipart_fields_and_file_reach_the_input(client: httpx.AsyncClient) -> None:
    hook = await _hook(client)

    response = await client.post(
        hook["path"],
        data={"note": "hello", "tag": ["a", "b"]},
        files={"doc": ("report.csv", b"a,b\n1,2\n", "text/csv")},
        headers={"x-api-wait": "true"},
    )

    assert response.status_code == 200, response.text
    body = response.json()["data"]["input"]["body"]
    url = body["doc"]["url"]
    assert url.startswith(f"{PUBLIC}/api/v1/files/file_")
    assert body == {
        "note": "hello",
        "tag": ["a", "b"],
        "doc": {
            "name": "doc",
            "filename": "report.csv",
            "contentType": "text/csv",
            "size": 8,
            "url": url,
        },
    }


async def test_hook_multipart_file_is_served_to_the_project_and_404_to_others(
    client: httpx.AsyncClient,
) -> None:
    hook = await _hook(client)
    other = await _other_key(client)
    sent = await client.post(
        hook["path"],
        files={"doc": ("report.csv", b"a,b\n1,2\n", "text/csv")},
        headers={"x-api-wait": "true"},
    )
    url = sent.json()["data"]["input"]["body"]["doc"]["url"]
    path = url.removeprefix(PUBLIC)

    mine = await client.get(path)
    theirs = await client.get(path, headers=other)
    unknown = await client.get("/api/v1/files/file_unknown")

    assert mine.status_code == 200, mine.text
    assert mine.content == b"a,b\n1,2\n"
    assert mine.headers["content-type"].startswith("text/csv")
    assert mine.headers["content-disposition"] == 'attachment; filename="report.csv"'
    assert mine.headers["x-content-type-options"] == "nosniff"
    for refused in (theirs, unknown):
        assert refused.status_code == 404
        assert refused.json()["error"] == {"code": "NOT_FOUND", "message": "File not found"}


async def test_hook_multipart_files_are_0600_in_a_0700_directory(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client)

    response = await client.post(hook["path"], files={"f": ("a.txt", b"secret")})

    assert response.status_code == 202, response.text
    [stored] = _uploaded(server_settings)
    assert stored.read_bytes() == b"secret"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700


async def test_hook_multipart_file_over_the_cap_is_413_and_leaves_nothing_on_disk(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client)

    response = await _post_streamed(client, hook["path"], MAX_UPLOAD + 1)

    assert response.status_code == 413, response.text
    assert response.json()["error"] == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": f"An uploaded file is larger than {MAX_UPLOAD} bytes",
    }
    assert _uploaded(server_settings) == []
    assert (await client.get("/api/v1/runs")).json()["data"] == []
    [delivery] = (await client.get(f"/api/v1/triggers/{hook['id']}/deliveries")).json()["data"]
    assert (delivery["verdict"], delivery["reason"]) == (
        "rejected",
        response.json()["error"]["message"],
    )


async def test_hook_multipart_too_many_files_is_400_and_leaves_nothing_on_disk(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client)
    files = [("f", (f"{n}.txt", b"x")) for n in range(21)]

    response = await client.post(hook["path"], files=files)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "INVALID_REQUEST",
        "message": "At most 20 multipart files are accepted",
    }
    assert _uploaded(server_settings) == []


async def test_hook_multipart_too_many_fields_is_400(client: httpx.AsyncClient) -> None:
    hook = await _hook(client)

    response = await client.post(
        hook["path"], data={"f": [str(n) for n in range(1001)]}, files={"x": ("x", b"x")}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "At most 1000 multipart fields are accepted"


def _form_body(payload: bytes = b"\x00\x01signed-bytes") -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
            "hello\r\n"
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="doc"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def _signature(style: str, secret: str, body: bytes, stamp: int) -> dict[str, str]:
    if style == "stripe":
        digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        return {"stripe-signature": f"t={stamp},v1={digest.hexdigest()}"}
    header = "x-hub-signature-256" if style == "github" else "x-flowgate-signature"
    return {header: "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


async def _post_signed(
    client: httpx.AsyncClient, path: str, body: bytes, signature: dict[str, str]
) -> httpx.Response:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **signature}
    return await client.post(path, content=body, headers={"x-api-wait": "true", **headers})


async def _deliveries(client: httpx.AsyncClient, trigger_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/triggers/{trigger_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@pytest.mark.parametrize("style", ["flowgate", "github", "stripe"])
async def test_hook_signed_multipart_is_accepted_and_its_replay_reuses_the_file(
    client: httpx.AsyncClient, server_settings: Settings, clock: FrozenClock, style: str
) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": style, "signingSecret": "s3cret"}
    )
    body = _form_body()
    stamp = int(clock.now().timestamp())

    response = await _post_signed(
        client, hook["path"], body, _signature(style, "s3cret", body, stamp)
    )

    assert response.status_code == 200, response.text
    sent = response.json()["data"]["input"]["body"]
    assert sent["note"] == "hello"
    assert sent["doc"]["size"] == len(b"\x00\x01signed-bytes")
    [stored] = _uploaded(server_settings)
    assert stored.read_bytes() == b"\x00\x01signed-bytes"
    [delivery] = await _deliveries(client, hook["id"])
    assert delivery["verdict"] == "accepted"

    # The raw body is not kept, so the replay is not checked again: it was accepted.
    replayed = await client.post(
        f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay"
    )

    assert replayed.status_code == 201, replayed.text
    run = (await client.get(f"/api/v1/runs/{replayed.json()['data']['runId']}")).json()["data"]
    assert run["input"]["body"] == sent
    assert _uploaded(server_settings) == [stored]


async def test_hook_wrongly_signed_multipart_is_401_keeps_nothing_and_cannot_be_replayed(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client, {"type": "webhook", "signingSecret": "s3cret"})
    body = _form_body()

    response = await _post_signed(
        client, hook["path"], body, _signature("flowgate", "other secret", body, 0)
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"] == {
        "code": "UNAUTHORIZED",
        "message": "x-flowgate-signature does not match",
    }
    assert _uploaded(server_settings) == []
    assert (await client.get("/api/v1/runs")).json()["data"] == []
    [delivery] = await _deliveries(client, hook["id"])
    assert (delivery["verdict"], delivery["reason"]) == (
        "rejected",
        "x-flowgate-signature does not match",
    )
    assert delivery["runId"] is None

    replayed = await client.post(
        f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay"
    )

    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"]["message"] == (
        "A signed multipart delivery cannot be verified again: ask the sender to resend it"
    )
    assert (await client.get("/api/v1/runs")).json()["data"] == []


async def test_hook_unsigned_multipart_to_a_signed_trigger_is_401_before_the_body_is_read(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client, {"type": "webhook", "signingSecret": "s3cret"})

    # Read, this body would be 400 (no closing boundary): the missing header is found first.
    response = await client.post(
        hook["path"],
        content=f"--{BOUNDARY}\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"] == "Missing x-flowgate-signature header"
    assert _uploaded(server_settings) == []
    [delivery] = await _deliveries(client, hook["id"])
    assert delivery["verdict"] == "rejected"


async def test_hook_stale_signed_multipart_is_401_before_the_body_is_read(
    client: httpx.AsyncClient, server_settings: Settings, clock: FrozenClock
) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": "stripe", "signingSecret": "s3cret"}
    )
    stale = int(clock.now().timestamp()) - 301
    body = f"--{BOUNDARY}\r\n".encode()

    response = await _post_signed(
        client, hook["path"], body, _signature("stripe", "s3cret", body, stale)
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"] == (
        "Signature timestamp is outside the 5-minute tolerance"
    )
    assert _uploaded(server_settings) == []


async def test_hook_replayed_signed_multipart_is_401_and_deletes_its_files(
    client: httpx.AsyncClient, server_settings: Settings, clock: FrozenClock
) -> None:
    hook = await _hook(
        client, {"type": "webhook", "signatureStyle": "stripe", "signingSecret": "s3cret"}
    )
    body = _form_body()
    signature = _signature("stripe", "s3cret", body, int(clock.now().timestamp()))
    first = await _post_signed(client, hook["path"], body, signature)
    [kept] = _uploaded(server_settings)

    again = await _post_signed(client, hook["path"], body, signature)

    assert first.status_code == 200, first.text
    assert again.status_code == 401, again.text
    assert again.json()["error"]["message"] == (
        "Replayed signature: this delivery was already accepted"
    )
    assert _uploaded(server_settings) == [kept]
    assert len((await client.get("/api/v1/runs")).json()["data"]) == 1
    refused, accepted = await _deliveries(client, hook["id"])
    assert (refused["verdict"], accepted["verdict"]) == ("rejected", "accepted")
    replayed = await client.post(f"/api/v1/triggers/{hook['id']}/deliveries/{refused['id']}/replay")
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"]["message"] == (
        "A signed multipart delivery cannot be verified again: ask the sender to resend it"
    )


async def test_inbox_keeps_the_form_without_file_bytes_and_replay_reuses_the_file(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client)
    sent = await client.post(
        hook["path"],
        data={"note": "hello"},
        files={"doc": ("a.bin", b"\x00\x01payload-bytes", "application/octet-stream")},
        headers={"x-api-wait": "true"},
    )
    first = sent.json()["data"]["input"]["body"]
    [delivery] = (await client.get(f"/api/v1/triggers/{hook['id']}/deliveries")).json()["data"]

    replayed = await client.post(
        f"/api/v1/triggers/{hook['id']}/deliveries/{delivery['id']}/replay"
    )

    assert "payload-bytes" not in delivery["body"]
    assert replayed.status_code == 201, replayed.text
    run = (await client.get(f"/api/v1/runs/{replayed.json()['data']['runId']}")).json()["data"]
    assert run["input"]["body"] == first
    assert len(_uploaded(server_settings)) == 1


async def test_uploaded_files_are_pruned_with_the_inbox(
    client: httpx.AsyncClient, server_settings: Settings, clock: FrozenClock
) -> None:
    hook = await _hook(client)
    sent = await client.post(
        hook["path"], files={"f": ("a.txt", b"hi")}, headers={"x-api-wait": "true"}
    )
    path = sent.json()["data"]["input"]["body"]["f"]["url"].removeprefix(PUBLIC)
    assert (await client.get(path)).status_code == 200

    clock.advance(days=7, seconds=1)

    async def gone() -> bool:
        return _uploaded(server_settings) == []

    await wait_until(gone, timeout=5)
    assert (await client.get(path)).status_code == 404


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hook_multipart_20_mb_upload_does_not_grow_rss_by_its_size(
    client: httpx.AsyncClient, server_settings: Settings
) -> None:
    hook = await _hook(client)
    size = 20 * 1024 * 1024
    # Reset the peak (VmHWM) so that it measures this upload only; the server runs in this
    # process, and the client generates the body as it sends it.
    _reset_peak_rss()
    before = _rss_bytes("VmRSS")

    response = await _post_streamed(client, hook["path"], size)

    assert response.status_code == 202, response.text
    [stored] = _uploaded(server_settings)
    assert stored.stat().st_size == size
    assert _rss_bytes("VmHWM") - before < size // 4
