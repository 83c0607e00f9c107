"""Where outbound ``http`` steps and actions may connect, decided where they connect.

Every outbound TCP connection goes through :class:`GuardedBackend`, the httpcore network backend
of the one outbound client (:func:`guarded_transport`): it resolves the host once, refuses the
connection if any resolved address is private, loopback, link-local, carrier-grade NAT, metadata
or otherwise reserved (unless the operator allows it: ``FLOWGATE_HTTP_ALLOW_PRIVATE=1`` for every
address, ``FLOWGATE_HTTP_ALLOW_HOSTS`` for exact ``host:port`` pairs), and connects to the address
it checked. No second DNS lookup happens, so DNS rebinding cannot reach
a refused address, and redirects are checked in the same place as first requests. The hostname
still serves for ``Host``, SNI and certificate verification (httpcore uses the URL's host for
those, never the address). Numeric disguises (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``,
``2002:7f00:1::``) resolve to, or embed, the address they hide and are refused like it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; the default asks the system resolver (getaddrinfo).
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Refused although Python's ``is_private`` (3.11) says nothing, or named here for the reader.
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "fc00::/7", "fe80::/10")  # CGNAT (cloud metadata), ULA, link
)


class DestinationRefused(Exception):
    """The URL is malformed or points somewhere outbound steps may not go."""


def forbidden(address: IPAddress) -> bool:
    """Whether outbound calls may not reach ``address`` (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return forbidden(embedded)
    return (
        any(address in network for network in _REFUSED_NETWORKS)
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_url(url: str) -> None:
    """Raises DestinationRefused unless ``url`` is an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"Only absolute http(s) URLs can be called, not {url!r}")


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolve: Resolver = system_resolve
) -> list[IPAddress]:
    """Resolve ``host`` once; raises DestinationRefused if any address is forbidden, and
    httpcore.ConnectError if it does not resolve."""
    try:
        found = await resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"Cannot resolve {host!r}: {exc}") from exc
    # Scope ids (fe80::1%eth0) are dropped: the address itself decides.
    addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in found))
    if not addresses:
        raise httpcore.ConnectError(f"Cannot resolve {host!r}")
    if not allow_private:
        for address in addresses:
            if forbidden(address):
                raise DestinationRefused(
                    f"{host!r} resolves to {address}, a private or reserved address; "
                    "set FLOWGATE_HTTP_ALLOW_PRIVATE=1 to allow it"
                )
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses: resolve, check all, connect to the first that
    answers, by address (pinned for the life of the connection). ``allowed`` ``(host, port)``
    pairs skip the check: that host as the URL names it, on that port only."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allowed: frozenset[tuple[str, int]] = frozenset(),
        resolve: Resolver = system_resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._allowed = allowed
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        allow = self._allow_private or (host.lower(), port) in self._allowed
        addresses = await resolve_checked(host, port, allow_private=allow, resolve=self._resolve)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # noqa: S101 - addresses is never empty
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("Outbound calls do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *,
    allow_private: bool,
    allowed: frozenset[tuple[str, int]] = frozenset(),
    resolve: Resolver = system_resolve,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """httpx's transport whose every connection goes through a :class:`GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx 0.28 cannot hand its pool a network backend; the pool is the transport's only
    # state, so swapping it keeps everything else (request mapping, exception mapping).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(
            allow_private=allow_private, allowed=allowed, resolve=resolve, inner=inner
        ),
    )
    return transport
