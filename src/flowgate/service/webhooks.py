"""Native webhooks (``/hooks/{token}``) and their inbox (DESIGN §4, §11).

Every delivery to a known token is stored, accepted or rejected, with its secret-bearing
headers masked. An accepted one starts its run through the one ``start_run`` path, as the
trigger's project (so quota and concurrency apply); an inbox replay goes the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from flowgate import errors, ids, jsonvalue
from flowgate.service import signatures, uploads
from flowgate.service.auth import Principal, acting_for_project
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.service.runs import StartedRun, StartRun, start_run
from flowgate.store.base import DeliveryRow, Duplicate, Page, TriggerRow
from flowgate.types import JSON, JSONObject
from flowgate.vault import VaultError

log = logging.getLogger(__name__)

#: Removed from a run's input and shown as ``***`` in the inbox.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-hub-signature"}
    | set(signatures.SIGNATURE_HEADERS.values())
)
MASK = "***"
JsonParser = Callable[[bytes], JSON]


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """A request to ``/hooks/{token}`` as received: header names lower-case, in order."""

    method: str
    path: str
    query_string: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    #: A multipart body, already parsed and its files stored; ``body`` is then its JSON.
    form: JSONObject | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HookStarted:
    started: StartedRun
    #: The trigger's project, as whom the run was started (to wait for it).
    principal: Principal


async def receive(
    svc: Services, token: str, arrival: Arrival, *, parse_json: JsonParser
) -> HookStarted:
    """Check, record and start. Raises NotFound (unknown token), RateLimited (the trigger's
    execute limit), Unauthorized (signature missing, wrong, stale or replayed), InvalidStatus
    (trigger disabled, workflow not active), UnsupportedMediaType, InvalidRequest and whatever
    ``start_run`` raises."""
    trigger = await _admit(svc, token)
    now = svc.clock.now()
    return await _drive(svc, trigger, arrival, now, check_at=now, live=True, parse=parse_json)


async def receive_form(
    svc: Services,
    token: str,
    arrival: Arrival,
    *,
    content_type: str,
    chunks: AsyncIterable[bytes],
    parse_json: JsonParser,
) -> HookStarted:
    """As ``receive``, for a multipart body read from ``chunks`` once the token is known and
    within its rate limit; also raises PayloadTooLarge. A signature's headers are checked before
    the body is read, its HMAC over the raw chunks as they stream through, and a refused
    request's files are deleted. The inbox keeps the fields and the files' metadata, not the
    files' bytes (nor the body of a request refused for its signature)."""
    trigger = await _admit(svc, token)
    now = svc.clock.now()
    try:
        signed = _signed_body(svc, trigger, arrival, now)
        form = await uploads.read_form(
            svc,
            project_id=trigger["project_id"],
            owner_id=trigger["id"],
            content_type=content_type,
            chunks=chunks,
            check=signed,
        )
    except errors.FlowgateError as exc:
        row = _delivery_row(trigger, arrival, now)
        await svc.store.insert_delivery({**row, "verdict": "rejected", "reason": exc.message})
        raise
    parsed = replace(arrival, body=jsonvalue.dumps(form.body), form=form.body)
    if signed is None:
        return await _drive(svc, trigger, parsed, now, check_at=now, live=True, parse=parse_json)
    try:
        return await _drive(
            svc,
            trigger,
            parsed,
            now,
            check_at=now,
            live=True,
            parse=parse_json,
            verified=True,
            replay_key=signed.replay_key,
        )
    except errors.Unauthorized:  # a replayed signature: nothing of the request is kept
        await uploads.delete_stored(svc, form.files)
        raise


@dataclass(slots=True)
class _SignedBody:
    """``uploads.BodyCheck`` for a trigger's signature, its headers already checked."""

    pending: signatures.Pending
    replay_key: str | None = None

    def update(self, chunk: bytes, /) -> None:
        self.pending.update(chunk)

    def finish(self) -> None:
        try:
            self.replay_key = self.pending.finish()
        except signatures.SignatureError as exc:
            raise errors.Unauthorized(str(exc)) from exc


def _signed_body(
    svc: Services, trigger: TriggerRow, arrival: Arrival, now: datetime
) -> _SignedBody | None:
    """None for a trigger without a signing secret. Raises Unauthorized (headers missing,
    malformed or outside the tolerance)."""
    signing = _signing(svc, trigger)
    if signing is None:
        return None
    style, secret = signing
    headers = {name: value for name, value in arrival.headers}
    try:
        return _SignedBody(pending=signatures.prepare(style, secret, headers, now=now))
    except signatures.SignatureError as exc:
        raise errors.Unauthorized(str(exc)) from exc


async def _admit(svc: Services, token: str) -> TriggerRow:
    trigger = await svc.store.get_trigger_by_token(token)
    if trigger is None or trigger["type"] != "webhook":
        raise errors.NotFound("Webhook not found")
    # Limited per trigger, like a key's execute category. A refused call is not kept in the
    # inbox: under a flood that would be one more write per request, the cost being refused.
    await svc.rate_limiter.acquire(f"trigger:{trigger['id']}", Category.EXECUTE, None)
    return trigger


async def replay_delivery(
    svc: Services,
    principal: Principal,
    trigger_id: str,
    delivery_id: str,
    *,
    parse_json: JsonParser,
) -> HookStarted:
    """Re-drive a stored delivery with the trigger's current secret; its signature is checked
    as of the time it was first received. Raises NotFound, and as ``receive``, except that a
    signature problem is InvalidRequest (the caller's key is fine)."""
    principal.require("runs:write")
    trigger = await _trigger(svc, principal, trigger_id)
    row = await svc.store.get_delivery(principal.project_id, trigger_id, delivery_id)
    if row is None:
        raise errors.NotFound("Delivery not found")
    headers = {**row["headers"], **(row["signature_headers"] or {})}
    arrival = Arrival(
        method=row["method"],
        path=row["path"],
        query_string=str(row["query"].get("raw", "")),
        headers=[(k, str(v)) for k, v in headers.items()],
        body=row["body"] or b"",
    )
    verified = False
    if uploads.is_multipart(str(headers.get("content-type", ""))):
        # Its files were stored when it arrived; the inbox holds the parsed form. Its raw body
        # is not kept: one accepted with its signature (its body and files are kept) is not
        # checked again, one refused for its signature (its body is not kept) cannot be.
        style = trigger["config"].get("signatureStyle")
        signed = style is not None and trigger["signing_secret_encrypted"] is not None
        if signed and not arrival.body:
            raise errors.InvalidRequest(
                "A signed multipart delivery cannot be verified again: ask the sender to resend it"
            )
        if not arrival.body:
            raise errors.InvalidRequest("The delivery's multipart body was not kept")
        verified = signed and signatures.SIGNATURE_HEADERS.get(str(style), "") in (
            row["signature_headers"] or {}
        )
        form = await _parse_json(arrival.body, parse_json)
        arrival = replace(arrival, form=form if isinstance(form, dict) else None)
    try:
        return await _drive(
            svc,
            trigger,
            arrival,
            svc.clock.now(),
            check_at=row["received_at"],
            live=False,
            parse=parse_json,
            replay_of=row["id"],
            verified=verified,
        )
    except errors.Unauthorized as exc:
        raise errors.InvalidRequest(f"The delivery was refused again: {exc.message}") from exc


async def _drive(
    svc: Services,
    trigger: TriggerRow,
    arrival: Arrival,
    now: datetime,
    *,
    check_at: datetime,
    live: bool,
    parse: JsonParser,
    replay_of: str | None = None,
    verified: bool = False,
    replay_key: str | None = None,
) -> HookStarted:
    """``verified``: the signature was checked already (``replay_key`` is its key)."""
    row = _delivery_row(trigger, arrival, now)
    try:
        run_input = await _run_input(arrival, parse)
        if not verified:
            replay_key = _check_signature(svc, trigger, arrival, check_at)
    except errors.FlowgateError as exc:
        await svc.store.insert_delivery({**row, "verdict": "rejected", "reason": exc.message})
        raise
    # An operator's replay from the inbox is deliberate; only a sender's repeat is a replay.
    row["replay_key"] = replay_key if live else None
    row["reason"] = None if replay_of is None else f"replay of {replay_of}"
    try:
        await svc.store.insert_delivery(row)
    except Duplicate as exc:
        reason = "Replayed signature: this delivery was already accepted"
        # A multipart body's files are deleted (by ``receive_form``): its form is not kept.
        refused: DeliveryRow = {**row, "replay_key": None, "verdict": "rejected", "reason": reason}
        if arrival.form is not None:
            refused["body"] = b""
        await svc.store.insert_delivery(refused)
        raise errors.Unauthorized(reason) from exc
    try:
        result = await _start(svc, trigger, run_input)
    except errors.FlowgateError as exc:
        await svc.store.finish_delivery(
            trigger["project_id"], row["id"], reason=exc.message, run_id=None
        )
        raise
    await svc.store.finish_delivery(
        trigger["project_id"], row["id"], reason=None, run_id=result.started.run["id"]
    )
    return result


def _delivery_row(trigger: TriggerRow, arrival: Arrival, now: datetime) -> DeliveryRow:
    headers: JSONObject = {}
    kept: JSONObject = {}
    for name, value in arrival.headers:
        if name in SECRET_HEADERS:
            headers[name] = MASK
            if name in signatures.SIGNATURE_HEADERS.values():
                kept[name] = value
        else:
            headers[name] = _joined(headers.get(name), value)
    return DeliveryRow(
        project_id=trigger["project_id"],
        id=ids.new_id("dlv"),
        trigger_id=trigger["id"],
        received_at=now,
        method=arrival.method,
        path=arrival.path,
        query={"raw": arrival.query_string},
        headers=headers,
        body=arrival.body,
        verdict="accepted",
        reason=None,
        run_id=None,
        signature_headers=kept or None,
        replay_key=None,
        workflow_id=trigger["workflow_id"],
        source="webhook",
        run_start=None,
    )


def _joined(before: JSON, value: str) -> str:
    return value if before is None else f"{before}, {value}"


def _signing(svc: Services, trigger: TriggerRow) -> tuple[str, str] | None:
    """The trigger's signature style and secret, or None. Raises ConfigurationError."""
    style = trigger["config"].get("signatureStyle")
    encrypted = trigger["signing_secret_encrypted"]
    if style is None or encrypted is None:
        return None
    try:
        return str(style), str(svc.vault.decrypt(encrypted))
    except VaultError as exc:
        raise errors.ConfigurationError("Cannot read the trigger's signing secret") from exc


def _check_signature(
    svc: Services, trigger: TriggerRow, arrival: Arrival, now: datetime
) -> str | None:
    signing = _signing(svc, trigger)
    if signing is None:
        return None
    style, secret = signing
    headers = {name: value for name, value in arrival.headers}
    try:
        return signatures.verify(style, secret, arrival.body, headers, now=now)
    except signatures.SignatureError as exc:
        raise errors.Unauthorized(str(exc)) from exc


async def _run_input(arrival: Arrival, parse: JsonParser) -> JSONObject:
    """``{body, query, headers, method}``: JSON and forms parsed, other text as a string."""
    headers: JSONObject = {}
    for name, value in arrival.headers:
        if name not in SECRET_HEADERS:
            headers[name] = _joined(headers.get(name), value)
    content_type = str(headers.get("content-type", "")).split(";")[0].strip().lower()
    body = (
        arrival.form if arrival.form is not None else await _body(arrival.body, content_type, parse)
    )
    return {
        "body": body,
        "query": uploads.grouped(parse_qsl(arrival.query_string, keep_blank_values=True)),
        "headers": headers,
        "method": arrival.method,
    }


async def _parse_json(raw: bytes, parse: JsonParser) -> JSON:
    if len(raw) > jsonvalue.OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse, raw)
    return parse(raw)


async def _body(raw: bytes, content_type: str, parse: JsonParser) -> JSON:
    if not raw:
        return None
    if content_type.startswith("multipart/"):  # read as a stream by ``receive_form``
        raise errors.UnsupportedMediaType("The multipart body could not be read")
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _parse_json(raw, parse)
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise errors.UnsupportedMediaType(
            "The body is neither JSON, a form nor UTF-8 text"
        ) from exc
    if "\x00" in text:  # PostgreSQL can store no NUL in a run's input
        raise errors.InvalidRequest("The body must not contain NUL characters")
    if content_type == "application/x-www-form-urlencoded":
        return uploads.grouped(parse_qsl(text, keep_blank_values=True))
    return text


async def _start(svc: Services, trigger: TriggerRow, run_input: JSONObject) -> HookStarted:
    if not trigger["enabled"]:
        raise errors.InvalidStatus("Trigger is disabled")
    principal = await acting_for_project(
        svc,
        trigger["project_id"],
        key_id=f"trigger:{trigger['id']}",
        scopes=frozenset({"workflows:execute", "runs:read"}),
    )
    command = StartRun(workflow=trigger["workflow_id"], input=run_input, source="webhook")
    return HookStarted(started=await start_run(svc, principal, command), principal=principal)


async def _trigger(svc: Services, principal: Principal, trigger_id: str) -> TriggerRow:
    row = await svc.store.get_trigger(principal.project_id, trigger_id)
    if row is None:
        raise errors.NotFound("Trigger not found")
    return row


async def list_deliveries(
    svc: Services, principal: Principal, trigger_id: str, page: Page
) -> list[DeliveryRow]:
    """Newest first. Raises NotFound for an unknown or foreign trigger."""
    principal.require("workflows:read")
    await _trigger(svc, principal, trigger_id)
    return await svc.store.list_deliveries(principal.project_id, trigger_id, page)


async def prune_inbox(svc: Services, *, every: float, batch: int = 1000) -> None:
    """Delete deliveries older than ``inbox_days``, ``batch`` rows per transaction, every
    ``every`` seconds. Runs until cancelled."""
    while True:
        try:
            await prune_once(svc, batch=batch)
        except Exception:
            log.exception("inbox.prune_failed")
        await asyncio.sleep(every)


async def prune_once(svc: Services, *, batch: int = 1000) -> int:
    """One pass, uploaded files included; returns how many deliveries were deleted."""
    before = svc.clock.now() - timedelta(days=svc.settings.inbox_days)
    await uploads.prune_files(svc, before=before, batch=batch)
    total = 0
    while True:
        deleted = await svc.store.prune_deliveries(before=before, limit=batch)
        total += deleted
        if deleted < batch:
            return total
