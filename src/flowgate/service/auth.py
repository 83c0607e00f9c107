"""API keys: creating, authenticating, listing, revoking. Keys are stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowgate import errors, ids
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.store.base import KeyRow, ProjectRow

SCOPES = (
    "workflows:execute",
    "workflows:read",
    "workflows:write",
    "runs:read",
    "runs:write",
    "events:write",
    "admin",
)
DEFAULT_PROJECT_ID = "prj_default"
_TOUCH_EVERY = timedelta(minutes=1)


def hash_key(secret: str) -> str:
    """Keys carry ≥ 128 random bits, so one SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(secret: str) -> str:
    return secret[:12]


def new_secret() -> str:
    return "fgk_" + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is calling: a key, its project and scopes."""

    key_id: str
    project_id: str
    org_id: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None
    is_bootstrap: bool
    run_quota_per_day: int | None = None
    #: The project's default ``buffer_secs`` for event sends (None or 0: no buffering).
    event_buffer_secs: int | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def administers_all_projects(self) -> bool:
        return "admin" in self.scopes and self.project_id == DEFAULT_PROJECT_ID

    def require(self, scope: str) -> None:
        """Raises Forbidden if the key lacks ``scope``."""
        if not self.has(scope):
            raise errors.Forbidden(f"This API key lacks the {scope!r} scope")


async def acting_for_project(
    svc: Services, project_id: str, *, key_id: str, scopes: frozenset[str]
) -> Principal:
    """flowgate itself starting a run for a project (a child run, a schedule, a webhook): no
    key, but the project's quota and the workflows' concurrency limits apply as to any run."""
    project = await svc.store.get_project(project_id)
    return Principal(
        key_id=key_id,
        project_id=project_id,
        org_id="" if project is None else project["org_id"],
        scopes=scopes,
        rate_limit_per_minute=None,
        is_bootstrap=False,
        run_quota_per_day=None if project is None else project["run_quota_per_day"],
        event_buffer_secs=None if project is None else project["event_buffer_secs"],
    )


async def authenticate(
    svc: Services, secret: str | None, category: Category = Category.READ
) -> Principal:
    """Raises Unauthorized for a missing, unknown, revoked or expired key; RateLimited."""
    if not secret:
        raise errors.Unauthorized("Missing API key: send it as x-api-key or Authorization: Bearer")
    digest = hash_key(secret)
    found = svc.key_cache.get(digest)
    if found is None:
        found = await svc.store.find_key(digest)
        if found is not None:
            svc.key_cache.put(digest, found)
    if found is None or not hmac.compare_digest(found[0]["key_hash"], digest):
        raise errors.Unauthorized("Invalid API key")
    key, project = found
    now = svc.clock.now()
    check_usable(key, now)
    if key["last_used_at"] is None or now - key["last_used_at"] > _TOUCH_EVERY:
        key["last_used_at"] = now
        await svc.store.touch_key(key["id"], now=now)
    return await admit(svc, key, project, category)


def check_usable(key: KeyRow, now: datetime) -> None:
    """Raises Unauthorized for a revoked or expired key."""
    if key["revoked_at"] is not None:
        raise errors.Unauthorized("This API key has been revoked")
    if key["expires_at"] is not None and key["expires_at"] <= now:
        raise errors.Unauthorized("This API key has expired")


async def admit(svc: Services, key: KeyRow, project: ProjectRow, category: Category) -> Principal:
    """A usable key's principal, counted against its ``category`` rate limit (RateLimited)."""
    if not key["is_bootstrap"]:
        await svc.rate_limiter.acquire(key["id"], category, key["rate_limit_per_minute"])
    return Principal(
        key_id=key["id"],
        project_id=key["project_id"],
        org_id=project["org_id"],
        scopes=frozenset(key["scopes"]),
        rate_limit_per_minute=key["rate_limit_per_minute"],
        is_bootstrap=key["is_bootstrap"],
        run_quota_per_day=project["run_quota_per_day"],
        event_buffer_secs=project["event_buffer_secs"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateKey:
    name: str
    scopes: list[str]
    project_id: str | None = None
    expires_at: datetime | None = None
    rate_limit_per_minute: int | None = None


async def create_key(svc: Services, principal: Principal, cmd: CreateKey) -> tuple[KeyRow, str]:
    """Returns the row and the secret (shown once). Raises Forbidden, NotFound, InvalidRequest."""
    principal.require("admin")
    project_id = cmd.project_id or principal.project_id
    if project_id != principal.project_id:
        if not principal.administers_all_projects:
            raise errors.NotFound("Project not found")
        if await svc.store.get_project(project_id) is None:
            raise errors.NotFound("Project not found")
    unknown = sorted(set(cmd.scopes) - set(SCOPES))
    if unknown:
        raise errors.InvalidRequest(
            f"Unknown scopes: {', '.join(unknown)}",
            details=[{"path": ["scopes"], "message": f"must be among {', '.join(SCOPES)}"}],
        )
    if not cmd.scopes:
        raise errors.InvalidRequest("A key needs at least one scope")
    now = svc.clock.now()
    if cmd.expires_at is not None and cmd.expires_at <= now:
        raise errors.InvalidRequest("expiresAt must be in the future")
    secret = new_secret()
    row = KeyRow(
        id=ids.new_id("key"),
        project_id=project_id,
        name=cmd.name,
        prefix=key_prefix(secret),
        key_hash=hash_key(secret),
        scopes=sorted(set(cmd.scopes)),
        rate_limit_per_minute=cmd.rate_limit_per_minute,
        is_bootstrap=False,
        created_at=now,
        last_used_at=None,
        expires_at=cmd.expires_at,
        revoked_at=None,
    )
    await svc.store.insert_key(row)
    return row, secret


async def list_keys(svc: Services, principal: Principal) -> list[KeyRow]:
    principal.require("admin")
    return await svc.store.list_keys(principal.project_id)


async def revoke_key(svc: Services, principal: Principal, key_id: str) -> KeyRow:
    """Raises Forbidden without admin, NotFound for unknown or foreign keys."""
    principal.require("admin")
    row = await svc.store.revoke_key(principal.project_id, key_id, now=svc.clock.now())
    svc.key_cache.clear()
    if row is None:
        raise errors.NotFound("API key not found")
    return row
