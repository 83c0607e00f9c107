"""Outbound destinations: private and disguised addresses are refused, at connect time, on the
address that was checked (DESIGN §7). The transport tests use a fake resolver and a fake network,
so nothing leaves the process."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx
import pytest

from flowgate.clock import Clock
from flowgate.engine.functions import FunctionRegistry
from flowgate.engine.netguard import (
    DestinationRefused,
    check_url,
    guarded_transport,
    resolve_checked,
)
from flowgate.engine.outbound import Credentials
from flowgate.engine.steps import HttpContext, StepContext, StepFailure
from flowgate.engine.steps.http import send
from flowgate.types import JSONObject

PUBLIC = "93.184.216.34"
OTHER_PUBLIC = "93.184.216.35"


async def _check(url: str, *, allow_private: bool = False) -> None:
    check_url(url)
    parts = urlsplit(url)
    assert parts.hostname is not None
    await resolve_checked(parts.hostname, parts.port or 80, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/x",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "ftp://example.com/",
        "/relative",
    ],
)
async def test_check_destination_refuses_private_and_odd_urls(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await _check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://100.100.100.200/latest/meta-data/",  # a cloud's metadata address inside it
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:100.64.0.1]/",
    ],
)
async def test_check_destination_cgnat_6to4_ula_link_local_mapped_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await _check(url)


@pytest.mark.parametrize(
    "url", [f"https://{PUBLIC}/", "http://[2002:5db8:d822::1]/", "http://[::ffff:8.8.8.8]/"]
)
async def test_check_destination_public_and_6to4_of_public_are_allowed(url: str) -> None:
    await _check(url)


async def test_check_destination_allow_private_lets_loopback_through() -> None:
    await _check("http://127.0.0.1:9/", allow_private=True)


class _Stream(httpcore.AsyncMockStream):
    def __init__(self, answer: bytes) -> None:
        super().__init__([answer])
        self.written = b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer


class _Network(httpcore.AsyncNetworkBackend):
    """Answers by address; remembers where it was asked to connect and what was written."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.streams: list[tuple[str, _Stream]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = _Stream(self.answers[host])
        self.streams.append((host, stream))
        return stream


class _Resolver:
    """Each name's answers in turn: a rebinding name answers differently the second time."""

    def __init__(self, names: dict[str, list[list[str]]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.names[host].pop(0)


def _client(resolver: _Resolver, network: _Network) -> httpx.AsyncClient:
    transport = guarded_transport(allow_private=False, resolve=resolver, inner=network)
    return httpx.AsyncClient(transport=transport, trust_env=False)


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def test_guarded_transport_rebinding_name_connects_to_checked_address_once() -> None:
    resolver = _Resolver({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    network = _Network({PUBLIC: OK})

    async with _client(resolver, network) as client:
        response = await client.get("http://rebind.test/x")

    assert response.text == "ok"
    assert resolver.asked == ["rebind.test"]
    [(address, stream)] = network.streams
    assert address == PUBLIC
    assert b"Host: rebind.test\r\n" in stream.written


async def test_guarded_transport_any_forbidden_address_refuses_before_connecting() -> None:
    resolver = _Resolver({"mixed.test": [[PUBLIC, "10.0.0.7"]]})
    network = _Network({PUBLIC: OK})

    async with _client(resolver, network) as client:
        with pytest.raises(DestinationRefused, match=r"resolves to 10\.0\.0\.7"):
            await client.get("http://mixed.test/")

    assert network.streams == []


def _context(client: httpx.AsyncClient) -> StepContext:
    return StepContext(
        run_id="run_1",
        step_id="call",
        attempt=1,
        project_id="proj_default",
        env={},
        connection=None,
        functions=FunctionRegistry(),
        clock=Clock(),
        http=HttpContext(client=client, timeout_secs=5),
        idempotency_key="run_1:call",
    )


def _redirect(to: str) -> bytes:
    return f"HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n".encode()


async def test_send_redirect_to_name_resolving_private_fails_the_step() -> None:
    resolver = _Resolver({"api.test": [[PUBLIC]], "internal.test": [["10.0.0.7"]]})
    network = _Network({PUBLIC: _redirect("http://internal.test/admin")})
    credentials = Credentials.for_base("http://api.test", {"Authorization": "Bearer conn"})

    async with _client(resolver, network) as client:
        with pytest.raises(StepFailure, match=r"'internal\.test' resolves to 10\.0\.0\.7"):
            await send({"url": "http://api.test/x"}, _context(client), credentials=credentials)

    assert [address for address, _ in network.streams] == [PUBLIC]


async def test_send_redirect_to_other_public_origin_drops_connection_headers() -> None:
    resolver = _Resolver({"api.test": [[PUBLIC]], "else.test": [[OTHER_PUBLIC]]})
    network = _Network({PUBLIC: _redirect("http://else.test/y"), OTHER_PUBLIC: OK})
    credentials = Credentials.for_base("http://api.test", {"X-Api-Key": "conn-secret"})

    async with _client(resolver, network) as client:
        config: JSONObject = {"url": "http://api.test/x"}
        output = await send(config, _context(client), credentials=credentials)

    assert output["body"] == "ok"
    (_, first), (_, second) = network.streams
    assert b"X-Api-Key: conn-secret\r\n" in first.written
    assert b"conn-secret" not in second.written
    assert b"Idempotency-Key: run_1:call\r\n" in second.written
