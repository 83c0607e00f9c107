"""``stripe.createInvoice``: Stripe's REST API with the connection's secret key.

``amount`` is in the currency's main unit (27.54) and goes to Stripe in the minor unit (2754):
an invoice item for the customer, then the invoice that collects it. The output is Stripe's
invoice object (``id``, ``number``, ``amount_due``, …). Both calls go through the ``http``
step's ``send``: the secret key travels only to ``apiBase``'s origin (dropped on a redirect
elsewhere), responses are read under the size and time bounds, and each call carries its own
``Idempotency-Key`` (``{runId}:{stepId}`` for the invoice, ``…:item`` for the item).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar
from urllib.parse import urlencode

import httpx

from flowgate.engine.actions import register_action
from flowgate.engine.outbound import Credentials
from flowgate.engine.steps import StepContext, StepFailure, connection_for
from flowgate.engine.steps.http import ANY_STATUS, send
from flowgate.types import JSON, JSONObject

DEFAULT_API_BASE = "https://api.stripe.com"
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "ugx", "xaf", "xof", "bif", "djf", "gnf"}


def minor_units(amount: JSON, currency: str) -> int:
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise StepFailure(f"amount must be a number, not {amount!r}") from exc
    if currency.lower() in _ZERO_DECIMAL:
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _form(values: JSONObject, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested objects as ``metadata[source]=api-order``."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            pairs += _form(value, name)
        elif value is not None:
            pairs.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return pairs


@register_action("stripe.createInvoice")
class CreateInvoice:
    provider: ClassVar[str | None] = "stripe"

    async def run(self, config: JSONObject, ctx: StepContext) -> JSON:
        connection = await connection_for(ctx, "stripe")
        if connection is None:
            raise StepFailure(
                "stripe.createInvoice needs a stripe connection: the step's or the run's "
                "connectionId, or the project's conn_default_stripe"
            )
        secret = connection.credentials.get("secretKey")
        if not isinstance(secret, str) or not secret:
            raise StepFailure(f"Connection {connection.id!r} has no credentials.secretKey")
        base = str(connection.config.get("apiBase") or DEFAULT_API_BASE).rstrip("/")
        customer = config.get("customerId") or config.get("customer")
        currency = str(config.get("currency") or "usd").lower()
        amount = minor_units(config.get("amount"), currency)
        item = {
            "customer": customer,
            "amount": amount,
            "currency": currency,
            "description": config.get("description") or "Invoice",
        }
        invoice = {
            "customer": customer,
            "pending_invoice_items_behavior": "include",
            "metadata": config.get("metadata") if isinstance(config.get("metadata"), dict) else {},
        }
        try:
            credentials = Credentials.for_base(base, {"Authorization": f"Bearer {secret}"})
        except (httpx.InvalidURL, ValueError) as exc:
            raise StepFailure(f"Connection {connection.id!r} has an invalid apiBase") from exc
        # Two requests, two keys: Stripe refuses one key reused with other parameters.
        key = ctx.idempotency_key
        await _post(ctx, f"{base}/v1/invoiceitems", item, credentials, key=f"{key}:item")
        return await _post(ctx, f"{base}/v1/invoices", invoice, credentials, key=key)


async def _post(
    ctx: StepContext, url: str, values: JSONObject, credentials: Credentials, *, key: str
) -> JSON:
    request: JSONObject = {
        "method": "POST",
        "url": url,
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": key,
        },
        "body": urlencode(_form(values)),
        "okStatus": ANY_STATUS,
    }
    response = await send(request, ctx, credentials=credentials)
    status, body = response["status"], response["body"]
    if not isinstance(body, dict):
        body = {"raw": str(body)[:500]}
    if not isinstance(status, int) or status >= 400:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise StepFailure(f"Stripe answered {status}: {message or str(body)[:200]}")
    return body
