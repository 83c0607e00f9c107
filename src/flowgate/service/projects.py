"""Projects and the start-up bootstrap (default project, ``FLOWGATE_ADMIN_KEY``)."""

from __future__ import annotations

from typing import TypedDict

from flowgate import errors, ids
from flowgate.service.auth import DEFAULT_PROJECT_ID, Principal, hash_key, key_prefix
from flowgate.service.core import Services
from flowgate.service.events import MAX_BUFFER_SECS
from flowgate.store.base import Duplicate, KeyRow, ProjectRow

DEFAULT_ORG_ID = "org_default"
BOOTSTRAP_KEY_ID = "key_bootstrap_admin"


async def bootstrap(svc: Services) -> None:
    """Make sure the default project exists, and the admin key if one is configured."""
    now = svc.clock.now()
    await svc.store.ensure_project(
        ProjectRow(
            id=DEFAULT_PROJECT_ID,
            org_id=DEFAULT_ORG_ID,
            name="Default project",
            run_quota_per_day=None,
            created_at=now,
            event_buffer_secs=None,
        )
    )
    admin_key = svc.settings.admin_key
    if admin_key:
        await svc.store.upsert_bootstrap_key(
            KeyRow(
                id=BOOTSTRAP_KEY_ID,
                project_id=DEFAULT_PROJECT_ID,
                name="FLOWGATE_ADMIN_KEY",
                prefix=key_prefix(admin_key),
                key_hash=hash_key(admin_key),
                scopes=["admin"],
                rate_limit_per_minute=None,
                is_bootstrap=True,
                created_at=now,
                last_used_at=None,
                expires_at=None,
                revoked_at=None,
            )
        )


async def create_project(
    svc: Services, principal: Principal, *, name: str, org_id: str | None, project_id: str | None
) -> ProjectRow:
    """Raises Forbidden unless the caller is an admin of the default project; Conflict if taken."""
    if not principal.administers_all_projects:
        raise errors.Forbidden("Only an admin key of the default project can create projects")
    row = ProjectRow(
        id=project_id or ids.new_id("prj"),
        org_id=org_id or ids.new_id("org"),
        name=name,
        run_quota_per_day=None,
        created_at=svc.clock.now(),
        event_buffer_secs=None,
    )
    try:
        await svc.store.insert_project(row)
    except Duplicate as exc:
        raise errors.Conflict(f"A project with id {row['id']!r} already exists") from exc
    return row


class ProjectSettings(TypedDict, total=False):
    """The settings a ``PATCH`` sends; a key that is absent keeps its value, None clears it."""

    run_quota_per_day: int | None
    event_buffer_secs: int | None


async def update_project(
    svc: Services,
    principal: Principal,
    project_id: str,
    *,
    name: str | None,
    settings: ProjectSettings,
) -> ProjectRow:
    """Only an admin of the default project changes projects (a tenant cannot lift its quota).
    Raises Forbidden, NotFound, InvalidRequest (an event buffer beyond a week)."""
    row = await get_project(svc, principal, project_id)
    if not principal.administers_all_projects:
        raise errors.Forbidden("Only an admin key of the default project can change projects")
    buffer_secs = settings.get("event_buffer_secs")
    if buffer_secs is not None and not 0 <= buffer_secs <= MAX_BUFFER_SECS:
        raise errors.InvalidRequest(f"eventBufferSecs must be between 0 and {MAX_BUFFER_SECS}")
    changed = ProjectRow(**{**row, "name": name or row["name"], **settings})
    await svc.store.update_project(changed)
    svc.key_cache.clear()
    return changed


async def list_projects(svc: Services, principal: Principal) -> list[ProjectRow]:
    if principal.administers_all_projects:
        return await svc.store.list_projects(None)
    return await svc.store.list_projects([principal.project_id])


async def get_project(svc: Services, principal: Principal, project_id: str) -> ProjectRow:
    """Raises NotFound for unknown projects and for projects the key cannot see."""
    if not principal.administers_all_projects and project_id != principal.project_id:
        raise errors.NotFound("Project not found")
    row = await svc.store.get_project(project_id)
    if row is None:
        raise errors.NotFound("Project not found")
    return row
