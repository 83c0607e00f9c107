"""``http.request``: the ``http`` step as an action, with an ``http`` connection's ``baseUrl``
and ``credentials.headers`` applied."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urljoin

from flowgate.engine.actions import register_action
from flowgate.engine.steps import StepContext, StepFailure, connection_for
from flowgate.engine.steps.http import check_request_config, send
from flowgate.types import JSON, JSONObject


@register_action("http.request")
class HttpRequest:
    provider: ClassVar[str | None] = "http"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        request = dict(config)
        connection = await connection_for(ctx, "http")
        if connection is not None:
            base = str(connection.config.get("baseUrl") or "")
            request["url"] = urljoin(base.rstrip("/") + "/", str(config.get("url", "")).lstrip("/"))
            secret_headers = connection.credentials.get("headers")
            if isinstance(secret_headers, dict):
                headers = config.get("headers")
                request["headers"] = {
                    **(headers if isinstance(headers, dict) else {}),
                    **secret_headers,
                }
        problems = check_request_config(request)
        if problems:
            raise StepFailure(f"http.request: {problems[0].message}")
        return await send(request, ctx)
