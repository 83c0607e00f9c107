"""Outbound destinations: private and disguised addresses are refused (DESIGN §7)."""

from __future__ import annotations

import pytest

from flowgate.engine.netguard import DestinationRefused, check_destination


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
        await check_destination(url, allow_private=False)


async def test_check_destination_allows_public_ip_literal() -> None:
    await check_destination("https://93.184.216.34/", allow_private=False)


async def test_check_destination_allow_private_lets_loopback_through() -> None:
    await check_destination("http://127.0.0.1:9/", allow_private=True)
