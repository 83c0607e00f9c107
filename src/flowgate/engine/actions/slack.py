"""``slack.postMessage``: post to a Slack incoming webhook (``credentials.webhookUrl``).

The webhook URL is itself the secret: it is called through the ``http`` step's ``send`` (size and
time bounds, ``Idempotency-Key``, origin rules) and never appears in an error message.
"""

from __future__ import annotations

from typing import ClassVar

import httpx
import orjson

from flowgate.engine.actions import register_action
from flowgate.engine.outbound import Credentials, origin_of
from flowgate.engine.steps import StepContext, StepFailure, connection_for
from flowgate.engine.steps.http import ANY_STATUS, send
from flowgate.types import JSON, JSONObject


@register_action("slack.postMessage")
class PostMessage:
    provider: ClassVar[str | None] = "slack"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        connection = await connection_for(ctx, "slack")
        url = connection.credentials.get("webhookUrl") if connection else config.get("webhookUrl")
        if not isinstance(url, str) or not url:
            raise StepFailure("slack.postMessage needs a slack connection with a webhookUrl")
        try:
            credentials = Credentials(origin=origin_of(url), label="the Slack webhook")
        except (httpx.InvalidURL, ValueError) as exc:
            raise StepFailure("The Slack webhookUrl is not a valid URL") from exc
        payload = {k: v for k, v in config.items() if k in ("text", "blocks", "attachments")}
        request: JSONObject = {
            "method": "POST",
            "url": url,
            "json": payload,
            "okStatus": ANY_STATUS,
        }
        response = await send(request, ctx, credentials=credentials)
        status, body = response["status"], response["body"]
        text = body if isinstance(body, str) else orjson.dumps(body).decode()
        if not isinstance(status, int) or status >= 300:
            raise StepFailure(f"Slack answered {status}: {text[:200]}")
        return {"status": status, "body": text}
