"""The references of DESIGN §10 item 6, served by uvicorn with flowgate's settings.

``bare_app``: ``POST /run`` → 201 ``{"ok": true}``, the ceiling of the server stack.
``sqlite_app``: ``POST /run`` inserts the body as one row (aiosqlite, WAL, ``synchronous=NORMAL``
like flowgate's store) and commits, per request: the floor of a durable accept on SQLite.
``postgres_app``: ``POST /run`` inserts one row through an asyncpg pool (autocommit, one statement
per request): the floor of a durable accept on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiosqlite
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

SQLITE_PATH_ENV = "BENCH_SQLITE_PATH"
POSTGRES_URL_ENV = "BENCH_POSTGRES_URL"
POSTGRES_POOL_SIZE = 10
"""flowgate's own PostgreSQL pool size (``store.postgres``)."""

_SCHEMA = "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, input TEXT, created_at TEXT)"
_INSERT = "INSERT INTO runs (id, input, created_at) VALUES (?, ?, ?)"


def _bare() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.post("/run")
    async def run() -> Response:
        return JSONResponse({"ok": True}, status_code=201)

    return app


@asynccontextmanager
async def _sqlite_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with aiosqlite.connect(os.environ[SQLITE_PATH_ENV]) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(_SCHEMA)
        await db.commit()
        app.state.db = db
        # One transaction per request: without the lock, concurrent requests on the one
        # connection would share a transaction, an accidental group commit.
        app.state.write_lock = asyncio.Lock()
        yield


def _sqlite() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=_sqlite_lifespan)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.post("/run")
    async def run(request: Request) -> Response:
        db: aiosqlite.Connection = request.app.state.db
        row_id = uuid.uuid4().hex
        body = (await request.body()).decode()
        async with request.app.state.write_lock:
            await db.execute(_INSERT, (row_id, body, datetime.now(UTC).isoformat()))
            await db.commit()
        return JSONResponse({"ok": True, "id": row_id}, status_code=201)

    return app


_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, input JSONB, created_at TIMESTAMPTZ)"
)
_PG_INSERT = "INSERT INTO runs (id, input, created_at) VALUES ($1, $2::jsonb, $3)"


@asynccontextmanager
async def _postgres_lifespan(app: FastAPI) -> AsyncIterator[None]:
    import asyncpg

    pool = await asyncpg.create_pool(
        os.environ[POSTGRES_URL_ENV], min_size=POSTGRES_POOL_SIZE, max_size=POSTGRES_POOL_SIZE
    )
    try:
        await pool.execute(_PG_SCHEMA)
        app.state.pool = pool
        yield
    finally:
        await pool.close()


def _postgres() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=_postgres_lifespan)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.post("/run")
    async def run(request: Request) -> Response:
        row_id = uuid.uuid4().hex
        body = (await request.body()).decode()
        await request.app.state.pool.execute(_PG_INSERT, row_id, body, datetime.now(UTC))
        return JSONResponse({"ok": True, "id": row_id}, status_code=201)

    return app


bare_app = _bare()
sqlite_app = _sqlite()
postgres_app = _postgres()
