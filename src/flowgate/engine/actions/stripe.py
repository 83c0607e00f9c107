"""``stripe.createInvoice``: Stripe's REST API with the connection's secret key.

``amount`` is in the currency's main unit (27.54) and goes to Stripe in the minor unit (2754):
an invoice item for the customer, then the invoice that collects it. The output is Stripe's
invoice object (``id``, ``number``, ``amount_due``, …).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar

import httpx
import orjson

from flowgate.engine.actions import register_action
from flowgate.engine.netguard import DestinationRefused, check_destination
from flowgate.engine.steps import StepContext, StepFailure, connection_for
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
            raise StepFailure("stripe.createInvoice needs a stripe connection (connectionId)")
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
        headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": ctx.idempotency_key}
        await _post(
            ctx,
            f"{base}/v1/invoiceitems",
            item,
            headers | {"Idempotency-Key": ctx.idempotency_key + ":item"},
        )
        return await _post(ctx, f"{base}/v1/invoices", invoice, headers)


async def _post(ctx: StepContext, url: str, values: JSONObject, headers: dict[str, str]) -> JSON:
    try:
        await check_destination(url, allow_private=ctx.http.allow_private)
    except DestinationRefused as exc:
        raise StepFailure(str(exc)) from exc
    try:
        response = await ctx.http.client.post(url, data=dict(_form(values)), headers=headers)
    except httpx.HTTPError as exc:
        raise StepFailure(f"Stripe request failed: {exc}") from exc
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {"raw": response.text[:500]}
    if response.status_code >= 400:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise StepFailure(
            f"Stripe answered {response.status_code}: {message or response.text[:200]}"
        )
    return body  # type: ignore[no-any-return]
