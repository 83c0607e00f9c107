"""Where a connection's credentials may go and what crosses a redirect (pure rules)."""

from __future__ import annotations

import httpx
import pytest

from flowgate.engine.outbound import follow, join_to_base, origin_of, with_idempotency_key

BASE = "https://api.example.com/v2"


@pytest.mark.parametrize(
    ("url", "joined"),
    [
        ("/users", "https://api.example.com/v2/users"),
        ("users?x=http://a", "https://api.example.com/v2/users?x=http://a"),
        ("//evil.example/x", "https://evil.example/x"),
        ("http://evil.example/x", "http://evil.example/x"),
    ],
)
def test_join_to_base_absolute_and_scheme_relative_stand_for_themselves(
    url: str, joined: str
) -> None:
    assert join_to_base(BASE, url) == joined


def test_origin_of_default_port_and_case_compare_equal() -> None:
    assert origin_of("HTTPS://API.Example.com:443/a") == origin_of("https://api.example.com/b")
    assert origin_of("http://api.example.com/") != origin_of("https://api.example.com/")


def test_with_idempotency_key_step_header_in_any_case_wins() -> None:
    assert with_idempotency_key({"IDEMPOTENCY-KEY": "mine"}, "r:s") == {"IDEMPOTENCY-KEY": "mine"}
    assert with_idempotency_key({}, "r:s") == {"Idempotency-Key": "r:s"}


def _post() -> httpx.Request:
    headers = {"Authorization": "Bearer a", "Cookie": "c=1", "X-Conn": "k", "X-Trace": "t"}
    return httpx.Request("POST", "https://api.example.com/a", headers=headers, content=b"{}")


def test_follow_307_other_origin_drops_credentials_and_body() -> None:
    nxt = follow(_post(), 307, httpx.URL("https://evil.example/b"), connection_headers={"x-conn"})

    assert nxt.method == "POST"
    assert nxt.content == b""
    assert "authorization" not in nxt.headers
    assert "cookie" not in nxt.headers
    assert "x-conn" not in nxt.headers
    assert nxt.headers["x-trace"] == "t"


def test_follow_307_same_origin_keeps_credentials_and_body() -> None:
    target = httpx.URL("https://api.example.com:443/b")

    nxt = follow(_post(), 307, target, connection_headers={"x-conn"})

    assert nxt.content == b"{}"
    assert nxt.headers["authorization"] == "Bearer a"
    assert nxt.headers["x-conn"] == "k"
