"""Where outbound ``http`` steps may go: not to private, loopback, link-local or metadata
addresses, checked after DNS resolution and again on every redirect, unless the operator allows
it (``FLOWGATE_HTTP_ALLOW_PRIVATE=1``). Numeric disguises (``2130706433``, ``0x7f.1``,
``[::ffff:127.0.0.1]``) resolve to the address they hide and are refused like it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class DestinationRefused(Exception):
    """The URL is malformed or points somewhere outbound steps may not go."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Raises DestinationRefused unless ``url`` is http(s) to a public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"Only absolute http(s) URLs can be called, not {url!r}")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused(f"Invalid port in {url!r}") from exc
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise DestinationRefused(f"Cannot resolve {parts.hostname!r}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _forbidden(address):
            raise DestinationRefused(
                f"{parts.hostname!r} resolves to {address}, a private or reserved address; "
                "set FLOWGATE_HTTP_ALLOW_PRIVATE=1 to allow it"
            )
