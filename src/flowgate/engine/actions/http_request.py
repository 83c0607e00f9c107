"""``http.request``: the ``http`` step as an action, with an ``http`` connection's ``baseUrl``
and ``credentials.headers`` applied.

A relative ``url`` is appended to ``baseUrl``. The credential headers go only to the origin of
``baseUrl``: an absolute or scheme-relative ``url`` to another origin fails the step ("url
leaves the connection's origin"), and a redirect to another origin drops them (``send``).
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from flowgate.engine.actions import register_action
from flowgate.engine.outbound import Credentials, join_to_base
from flowgate.engine.steps import StepContext, StepFailure, connection_for
from flowgate.engine.steps.http import check_request_config, send
from flowgate.types import JSON, JSONObject


@register_action("http.request")
class HttpRequest:
    provider: ClassVar[str | None] = "http"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        request = dict(config)
        credentials = None
        connection = await connection_for(ctx, "http")
        if connection is not None:
            base = str(connection.config.get("baseUrl") or "")
            if not base:
                raise StepFailure(f"Connection {connection.id!r} has no config.baseUrl")
            request["url"] = join_to_base(base, str(config.get("url", "")))
            secret = connection.credentials.get("headers")
            headers = secret if isinstance(secret, dict) else {}
            try:
                credentials = Credentials.for_base(
                    base, {str(k): str(v) for k, v in headers.items()}
                )
            except (httpx.InvalidURL, ValueError) as exc:
                raise StepFailure(f"Connection {connection.id!r} has an invalid baseUrl") from exc
        problems = check_request_config(request)
        if problems:
            raise StepFailure(f"http.request: {problems[0].message}")
        return await send(request, ctx, credentials=credentials)
