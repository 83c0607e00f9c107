"""What an outbound request may carry, and where: pure rules the ``http`` step's ``send`` applies.

- A connection's credentials (secret headers, Stripe's key, a Slack webhook URL) go only to the
  origin (scheme, host, port) of the connection's base URL; a request to another origin fails
  with "url leaves the connection's origin" before anything is sent.
- A redirect that changes origin drops ``Authorization``, ``Proxy-Authorization``, ``Cookie``
  and every connection-supplied header, and a 307/308 body is not re-sent (same origin: both
  kept). Once dropped they stay dropped, even if a later redirect comes back.
- Every request carries ``Idempotency-Key: {runId}:{stepId}`` unless the step gave its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SENSITIVE = frozenset({"authorization", "proxy-authorization", "cookie"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Origin = tuple[str, str, int]


class LeavesOrigin(Exception):
    """url leaves the connection's origin"""


def origin_of(url: httpx.URL | str) -> Origin:
    """``(scheme, host, port)`` with the default port filled in; hosts compare normalised."""
    parsed = httpx.URL(url)
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
    return parsed.scheme, parsed.host.lower(), port


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What a connection adds to a request, and the one origin it may be sent to.

    ``label`` replaces the URL in error messages when the URL is itself a secret (Slack).
    """

    origin: Origin
    headers: dict[str, str] = field(default_factory=dict)
    label: str | None = None

    @classmethod
    def for_base(cls, base_url: str, headers: dict[str, str] | None = None) -> Credentials:
        return cls(origin=origin_of(base_url), headers=dict(headers or {}))


def join_to_base(base_url: str, url: str) -> str:
    """A connection step's ``url`` against the connection's ``baseUrl``: a path is appended to
    the base; an absolute or scheme-relative URL stands for itself (its origin is checked)."""
    parts = urlsplit(url)
    if parts.scheme:
        return url
    if parts.netloc or url.startswith("//"):
        return f"{urlsplit(base_url).scheme}:{url}"
    return base_url.rstrip("/") + "/" + url.lstrip("/")


def check_origin(request: httpx.Request, credentials: Credentials | None) -> None:
    """Raises LeavesOrigin when a request carrying ``credentials`` goes elsewhere."""
    if credentials is not None and origin_of(request.url) != credentials.origin:
        raise LeavesOrigin("url leaves the connection's origin")


def with_idempotency_key(headers: dict[str, str], key: str) -> dict[str, str]:
    """``headers`` plus ``Idempotency-Key``, unless one is there already (any case)."""
    if not key or any(name.lower() == "idempotency-key" for name in headers):
        return headers
    return {**headers, "Idempotency-Key": key}


def redirect_target(response: httpx.Response) -> httpx.URL | None:
    """Where a redirect response points, or None when it is not one to follow."""
    location = response.headers.get("location")
    if response.status_code not in _REDIRECTS or not location:
        return None
    return response.request.url.join(location)


def follow(
    request: httpx.Request, status: int, url: httpx.URL, *, connection_headers: set[str]
) -> httpx.Request:
    """The request a redirect (``status`` to ``url``) leads to, with what may cross to it."""
    method = request.method
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"  # as browsers and httpx do; the body is not for the new method
    same_origin = origin_of(url) == origin_of(request.url)
    # Across origins no body is re-sent, whatever the status: a 307/308 would otherwise carry a
    # POST body meant for the first origin to whichever host the redirect names.
    keep_body = method == request.method and same_origin
    dropped = {"host", "content-length", "transfer-encoding"}
    if not keep_body:
        dropped |= {"content-type"}
    if not same_origin:
        dropped |= _SENSITIVE | connection_headers
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in dropped]
    content = request.content if keep_body else None
    return httpx.Request(method, url, headers=headers, content=content)
