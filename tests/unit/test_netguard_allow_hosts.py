"""``FLOWGATE_HTTP_ALLOW_HOSTS``: exact ``host:port`` pairs pass the outbound guard although
private or loopback; the same host on another port, and every other private address, are still
refused. (``serve --examples`` allows its Stripe stand-in this way.) A fake resolver and network,
so nothing leaves the process."""

from __future__ import annotations

import pytest

from flowgate.engine.netguard import DestinationRefused, GuardedBackend
from flowgate.settings import Settings, SettingsError, load_settings
from tests.unit.test_netguard import _Network, _Resolver

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _backend(network: _Network, **names: list[str]) -> GuardedBackend:
    resolver = _Resolver({host: [found] * 3 for host, found in names.items()})
    return GuardedBackend(
        allow_private=False,
        allowed=frozenset({("127.0.0.1", 12111), ("stripe.internal", 443)}),
        resolve=resolver,
        inner=network,
    )


async def test_allowed_host_port_connects_to_loopback() -> None:
    network = _Network({"127.0.0.1": OK, "10.0.0.5": OK})
    backend = _backend(network, **{"127.0.0.1": ["127.0.0.1"], "STRIPE.internal": ["10.0.0.5"]})

    await backend.connect_tcp("127.0.0.1", 12111)
    await backend.connect_tcp("STRIPE.internal", 443)

    assert [address for address, _ in network.streams] == ["127.0.0.1", "10.0.0.5"]


@pytest.mark.parametrize(
    ("host", "port"), [("127.0.0.1", 12112), ("127.0.0.1", 80), ("localhost", 12111)]
)
async def test_same_address_other_port_or_name_is_still_refused(host: str, port: int) -> None:
    network = _Network({"127.0.0.1": OK})
    backend = _backend(network, **{host: ["127.0.0.1"]})

    with pytest.raises(DestinationRefused):
        await backend.connect_tcp(host, port)

    assert network.streams == []


def test_settings_parse_pairs_lower_case_and_ipv6_brackets() -> None:
    settings = Settings(http_allow_hosts=" 127.0.0.1:12111, Mail.Test:25,[::1]:8025 ")

    assert settings.http_allowed_destinations == {
        ("127.0.0.1", 12111),
        ("mail.test", 25),
        ("::1", 8025),
    }
    assert Settings().http_allowed_destinations == frozenset()


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:", ":80", "host:99999", "host:http"])
def test_settings_refuse_what_is_not_host_port(value: str) -> None:
    with pytest.raises(SettingsError, match=r"FLOWGATE_HTTP_ALLOW_HOSTS: .*is not host:port"):
        load_settings(http_allow_hosts=value)
