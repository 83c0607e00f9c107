"""``slack.postMessage``: post to a Slack incoming webhook (``credentials.webhookUrl``)."""

from __future__ import annotations

from typing import ClassVar

import httpx

from flowgate.engine.actions import register_action
from flowgate.engine.netguard import DestinationRefused, check_destination
from flowgate.engine.steps import StepContext, StepFailure, connection_for
from flowgate.types import JSON, JSONObject


@register_action("slack.postMessage")
class PostMessage:
    provider: ClassVar[str | None] = "slack"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        connection = await connection_for(ctx, "slack")
        url = connection.credentials.get("webhookUrl") if connection else config.get("webhookUrl")
        if not isinstance(url, str) or not url:
            raise StepFailure("slack.postMessage needs a slack connection with a webhookUrl")
        payload = {k: v for k, v in config.items() if k in ("text", "blocks", "attachments")}
        try:
            await check_destination(url, allow_private=ctx.http.allow_private)
            response = await ctx.http.client.post(url, json=payload)
        except DestinationRefused as exc:
            raise StepFailure(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise StepFailure(f"Slack request failed: {exc}") from exc
        if response.status_code >= 300:
            raise StepFailure(f"Slack answered {response.status_code}: {response.text[:200]}")
        return {"status": response.status_code, "body": response.text}
