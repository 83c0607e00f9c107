"""A loopback HTTP server that outbound steps call in tests (the real thing, not a mock)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

HITS: Counter[str] = Counter()


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "query": dict(request.query_params),
            "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
            "body": body.decode(),
        }
    )


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return PlainTextResponse(f"status {code}", code)


async def flaky(request: Request) -> Response:
    """500 on the first two calls per key, then 200."""
    key = request.path_params["key"]
    HITS[key] += 1
    if HITS[key] < 3:
        return PlainTextResponse("not yet", 500)
    return JSONResponse({"calls": HITS[key]})


async def redirect(request: Request) -> Response:
    """Redirects to ``?to=`` with ``?code=`` (302 by default); recorded like ``/record``."""
    await _remember(request)
    code = int(request.query_params.get("code", "302"))
    return RedirectResponse(request.query_params["to"], status_code=code)


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * int(request.query_params["bytes"]))


async def reply(request: Request) -> Response:
    """Answers with status ``?status=`` and the request's own body and content type."""
    content_type = request.headers.get("content-type", "text/plain")
    return Response(
        await request.body(), int(request.query_params["status"]), media_type=content_type
    )


app = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/reply", reply, methods=["POST"]),
        Route("/status/{code:int}", status),
        Route("/flaky/{key}", flaky),
        Route("/redirect", redirect, methods=["GET", "POST"]),
        Route("/big", big, methods=["GET", "POST"]),
    ]
)


CALLS: list[tuple[str, str, float, str | None]] = []


async def count(request: Request) -> Response:
    """Records (run, step, arrival time, Idempotency-Key) for the fault tests."""
    import time

    query = request.query_params
    CALLS.append((query["run"], query["step"], time.time(), request.headers.get("idempotency-key")))
    return JSONResponse({"ok": True})


app.router.routes.append(Route("/count", count, methods=["POST"]))


STRIPE_REQUESTS: list[tuple[str, str, dict[str, str]]] = []


async def stripe_invoice_item(request: Request) -> Response:
    form = dict(await request.form())
    STRIPE_REQUESTS.append(("invoiceitems", request.headers.get("authorization", ""), form))  # type: ignore[arg-type]
    return JSONResponse({"id": "ii_1", "object": "invoiceitem", "amount": int(str(form["amount"]))})


async def stripe_invoice(request: Request) -> Response:
    """Answers like Stripe's ``POST /v1/invoices``; 401 without the expected secret key."""
    form = dict(await request.form())
    auth = request.headers.get("authorization", "")
    STRIPE_REQUESTS.append(("invoices", auth, form))  # type: ignore[arg-type]
    if auth != "Bearer sk_test_123":
        return JSONResponse({"error": {"message": "Invalid API Key provided"}}, 401)
    amount = sum(int(f["amount"]) for kind, _, f in STRIPE_REQUESTS if kind == "invoiceitems")
    return JSONResponse(
        {"id": "in_1", "object": "invoice", "number": "INV-0001", "amount_due": amount,
         "customer": form.get("customer"), "metadata": {"source": form.get("metadata[source]")}}
    )  # fmt: skip


app.router.routes.append(Route("/v1/invoiceitems", stripe_invoice_item, methods=["POST"]))
app.router.routes.append(Route("/v1/invoices", stripe_invoice, methods=["POST"]))


SEEN: list[dict[str, Any]] = []


async def _remember(request: Request) -> None:
    SEEN.append(
        {
            "host": request.headers.get("host"),
            "path": request.url.path,
            "method": request.method,
            "headers": {k: request.headers.getlist(k) for k in request.headers},
            "body": (await request.body()).decode(),
            "key": request.query_params.get("key"),
        }
    )


async def record(request: Request) -> Response:
    """Records what arrived in ``SEEN``; 500 to the first ``?fails=`` calls per ``?key=``."""
    await _remember(request)
    key = request.query_params.get("key", "")
    HITS["record:" + key] += 1
    if HITS["record:" + key] <= int(request.query_params.get("fails", "0")):
        return PlainTextResponse("not yet", 500)
    return JSONResponse({"ok": True})


async def trickle(request: Request) -> Response:
    """``?bytes=`` bytes, one each ``?every=`` seconds: every read is quick, the whole is not."""
    import asyncio

    count, every = int(request.query_params["bytes"]), float(request.query_params["every"])

    async def drip() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x"
            await asyncio.sleep(every)

    return StreamingResponse(drip(), media_type="text/plain")


app.router.routes.append(Route("/record", record, methods=["GET", "POST"]))
app.router.routes.append(Route("/trickle", trickle))
