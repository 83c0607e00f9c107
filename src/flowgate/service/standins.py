"""Local stand-ins for Stripe and a mail server, which ``flowgate serve --examples`` starts so the
example workflows that create an invoice and send an email complete without an account anywhere.

They are not real services and say so: invoice ids start ``in_standin_``, invoice numbers
``STANDIN-``, nothing is charged, and mail goes no further than the last :data:`KEEP_MAILS`
messages kept in memory (one log line each: to and subject). Both listen on loopback only, in a
thread of their own (uvicorn there installs no signal handlers, so the server's own Ctrl-C still
works).

The Stripe stand-in answers the two calls ``stripe.createInvoice`` makes, ``POST /v1/invoiceitems``
and ``POST /v1/invoices``, in Stripe's shapes (form-encoded in, JSON out, amounts in minor units,
``{"error": {"type", "message"}}`` on a bad request), and replays its first answer for a repeated
``Idempotency-Key`` as Stripe does. It listens on a fixed port (:data:`STRIPE_PORT`, stripe-mock's)
because the outbound guard's allow-list is fixed when the server starts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: The Stripe stand-in's port: stripe-mock's, so a running stripe-mock serves the examples too.
STRIPE_PORT = 12111
STRIPE_ORIGIN = f"{HOST}:{STRIPE_PORT}"
#: The secret key the examples' connection sends; the stand-in accepts any non-empty key.
STANDIN_SECRET_KEY = "sk_test_standin"  # noqa: S105 - not a secret: the stand-in takes any
SENDER = "examples@flowgate.invalid"
KEEP_MAILS = 20
_REMEMBERED_KEYS = 1000
_FORM_KEY = re.compile(r"\A([A-Za-z_]+)\[([^\]]+)\]\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMail:
    sender: str
    to: list[str]
    subject: str
    message: bytes


@dataclass(kw_only=True)
class StripeState:
    """What the Stripe stand-in remembers: pending invoice items per customer, answers per
    idempotency key, and how many invoices it has numbered. Touched only on its own thread."""

    pending: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    answers: dict[tuple[str, str], tuple[int, dict[str, object]]] = field(default_factory=dict)
    invoices: int = 0


def _stripe_error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status)


def _nested(form: dict[str, str], name: str) -> dict[str, str]:
    """Stripe's ``metadata[source]=api-order`` form keys, as ``{"source": "api-order"}``."""
    found = {}
    for key, value in form.items():
        match = _FORM_KEY.match(key)
        if match and match.group(1) == name:
            found[match.group(2)] = value
    return found


def _invoice_item(state: StripeState, form: dict[str, str]) -> tuple[int, dict[str, object]]:
    customer = form.get("customer")
    if not customer:
        return 400, {"error": {"type": "invalid_request_error", "message": "Missing customer"}}
    try:
        amount = int(form.get("amount", ""))
    except ValueError:
        return 400, {"error": {"type": "invalid_request_error", "message": "Invalid integer"}}
    item: dict[str, object] = {
        "id": f"ii_standin_{secrets.token_hex(8)}",
        "object": "invoiceitem",
        "customer": customer,
        "amount": amount,
        "currency": form.get("currency", "usd"),
        "description": form.get("description"),
        "livemode": False,
    }
    state.pending.setdefault(customer, []).append(item)
    return 200, item


def _invoice(state: StripeState, form: dict[str, str]) -> tuple[int, dict[str, object]]:
    customer = form.get("customer")
    if not customer:
        return 400, {"error": {"type": "invalid_request_error", "message": "Missing customer"}}
    items = state.pending.pop(customer, [])
    total = sum(int(str(item["amount"])) for item in items)
    state.invoices += 1
    invoice: dict[str, object] = {
        "id": f"in_standin_{secrets.token_hex(8)}",
        "object": "invoice",
        "number": f"STANDIN-{state.invoices:04d}",
        "customer": customer,
        "currency": str(items[0]["currency"]) if items else "usd",
        "amount_due": total,
        "subtotal": total,
        "total": total,
        "status": "draft",
        "metadata": _nested(form, "metadata"),
        "lines": {"object": "list", "data": items},
        "livemode": False,
        "description": "Created by flowgate's Stripe stand-in: not a real invoice.",
    }
    return 200, invoice


Handler = Callable[[StripeState, dict[str, str]], tuple[int, dict[str, object]]]


def stripe_app(state: StripeState) -> Starlette:
    """The Stripe stand-in's two endpoints (POST, form-encoded, bearer key required)."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
                return _stripe_error(401, "You did not provide an API key.", "authentication_error")
            form = {k: str(v) for k, v in (await request.form()).items()}
            key = request.headers.get("idempotency-key")
            if key and (request.url.path, key) in state.answers:
                status, body = state.answers[(request.url.path, key)]
                return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
            status, body = handler(state, form)
            if key:
                if len(state.answers) >= _REMEMBERED_KEYS:
                    state.answers.pop(next(iter(state.answers)))
                state.answers[(request.url.path, key)] = (status, body)
            return JSONResponse(body, status)

        return answer

    async def not_found(request: Request) -> Response:
        return _stripe_error(404, f"The stand-in has no {request.method} {request.url.path}.")

    return Starlette(
        routes=[
            Route("/v1/invoiceitems", endpoint(_invoice_item), methods=["POST"]),
            Route("/v1/invoices", endpoint(_invoice), methods=["POST"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


class MailSink:
    """aiosmtpd's handler: accepts every message, keeps the last ``keep`` and logs each one."""

    def __init__(self, keep: int = KEEP_MAILS) -> None:
        self.mails: deque[ReceivedMail] = deque(maxlen=keep)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=default_policy)
        mail = ReceivedMail(
            sender=str(envelope.mail_from or ""),
            to=[str(address) for address in envelope.rcpt_tos],
            subject=str(parsed.get("Subject", "")),
            message=content,
        )
        self.mails.append(mail)
        log.info(
            "examples.standin_mail_received",
            extra={"to": ", ".join(mail.to), "subject": mail.subject},
        )
        return "250 Kept by flowgate's SMTP stand-in (not delivered)"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: asyncio.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()


class Standins:
    """The Stripe stand-in (HTTP) and the SMTP sink, on loopback, served by one thread.

    :meth:`start` blocks until both listen and raises OSError when a port is taken.
    """

    def __init__(
        self, *, host: str = HOST, stripe_port: int = STRIPE_PORT, smtp_port: int = 0
    ) -> None:
        self.host = host
        self.sink = MailSink()
        self.stripe = StripeState()
        self._sockets = (
            socket.create_server((host, stripe_port)),
            socket.create_server((host, smtp_port)),
        )
        self._server: _Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="examples-standins", daemon=True)

    @property
    def stripe_port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    @property
    def smtp_port(self) -> int:
        return int(self._sockets[1].getsockname()[1])

    @property
    def stripe_url(self) -> str:
        return f"http://{self.host}:{self.stripe_port}"

    @property
    def mails(self) -> list[ReceivedMail]:
        return list(self.sink.mails)

    def start(self) -> None:
        # aiosmtpd logs every SMTP command at info, addresses included: one line per mail is ours.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None or self._server is None or not self._server.started:
            raise OSError(f"the stand-ins did not start: {self._error!r}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start(); the thread ends here
            self._error = exc
        finally:
            self._started.set()
            for sock in self._sockets:
                sock.close()

    async def _main(self) -> None:
        from aiosmtpd.smtp import SMTP  # deferred: ~16 ms that only `serve --examples` needs

        loop = asyncio.get_running_loop()
        smtp = await loop.create_server(
            lambda: SMTP(self.sink, hostname="flowgate-standin", loop=loop),
            sock=self._sockets[1],
        )
        config = uvicorn.Config(
            stripe_app(self.stripe),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        ready = asyncio.Event()
        self._server = _Server(config, ready)
        serving = asyncio.create_task(self._server.serve(sockets=[self._sockets[0]]))
        listening = asyncio.create_task(ready.wait())
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        self._started.set()
        try:
            await serving
        finally:
            smtp.close()
            await smtp.wait_closed()
