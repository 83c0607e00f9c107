"""``email.send``: one message over SMTP (aiosmtplib), through an ``smtp`` connection or
``FLOWGATE_SMTP_*``. Config: ``{to, subject, body: {html | text}, from?, cc?, bcc?}``."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid
from typing import ClassVar

import aiosmtplib

from flowgate.engine.actions import register_action
from flowgate.engine.steps import SmtpDefaults, StepContext, StepFailure, connection_for
from flowgate.types import JSON, JSONObject


def _addresses(value: JSON) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return []


@register_action("email.send")
class SendEmail:
    provider: ClassVar[str | None] = "smtp"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        server = await _server(ctx)
        to = _addresses(config.get("to"))
        if not to:
            raise StepFailure("email needs at least one recipient in 'to'")
        sender = str(config.get("from") or server.sender or "")
        if not sender:
            raise StepFailure(
                "email needs a sender: config.from, the connection, or FLOWGATE_SMTP_FROM"
            )
        message = _message(config, sender, to)
        recipients = to + _addresses(config.get("cc")) + _addresses(config.get("bcc"))
        try:
            await aiosmtplib.send(
                message,
                recipients=recipients,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                start_tls=server.starttls,
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise StepFailure(f"SMTP {server.host}:{server.port}: {exc}") from exc
        return {"messageId": message["Message-ID"], "to": to, "accepted": True}


async def _server(ctx: StepContext) -> SmtpDefaults:
    """The smtp connection chosen for the run or step, else ``FLOWGATE_SMTP_*``."""
    connection = await connection_for(ctx, "smtp")
    if connection is None:
        if not ctx.smtp.host:
            raise StepFailure("No smtp connection chosen and FLOWGATE_SMTP_HOST is not set")
        return ctx.smtp
    config, credentials = connection.config, connection.credentials
    port = config.get("port", 587)
    return SmtpDefaults(
        host=str(config.get("host") or ""),
        port=port if isinstance(port, int) else 587,
        sender=str(config["from"]) if config.get("from") else None,
        username=str(credentials["username"]) if credentials.get("username") else None,
        password=str(credentials["password"]) if credentials.get("password") else None,
        starttls=bool(config.get("starttls", False)),
    )


def _message(config: JSONObject, sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if config.get("cc"):
        message["Cc"] = ", ".join(_addresses(config.get("cc")))
    message["Subject"] = str(config.get("subject") or "")
    message["Message-ID"] = make_msgid(domain="flowgate")
    body = config.get("body")
    if isinstance(body, str):
        body = {"text": body}
    body = body if isinstance(body, dict) else {}
    text = body.get("text")
    html = body.get("html")
    message.set_content(str(text) if text is not None else _strip(str(html or "")))
    if html is not None:
        message.add_alternative(str(html), subtype="html")
    return message


def _strip(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html).strip()
