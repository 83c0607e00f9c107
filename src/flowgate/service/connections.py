"""Connections: named credentials per provider, encrypted at rest, never returned."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowgate import errors, ids
from flowgate.engine.steps import ConnectionView, StepFailure
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.store.base import ConnectionRow, Duplicate
from flowgate.types import JSONObject
from flowgate.vault import SecretKeyError, VaultError

CONNECTION_ID = re.compile(r"\Aconn_[A-Za-z0-9_-]{1,64}\Z")
CONNECTION_TYPE = re.compile(r"\A[a-z][a-z0-9_.-]{0,63}\Z")
#: For each known type: required config keys and required credential keys.
KNOWN_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "stripe": ((), ("secretKey",)),
    "smtp": (("host",), ()),
    "slack": ((), ("webhookUrl",)),
    "http": (("baseUrl",), ()),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteConnection:
    name: str | None = None
    type: str | None = None
    config: JSONObject | None = None
    credentials: JSONObject | None = None
    id: str | None = None


def _check(cmd: WriteConnection) -> None:
    problems: list[dict[str, object]] = []
    if cmd.id is not None and not CONNECTION_ID.match(cmd.id):
        problems.append({"path": ["id"], "message": "must match ^conn_[A-Za-z0-9_-]{1,64}$"})
    if cmd.type is not None and not CONNECTION_TYPE.match(cmd.type):
        problems.append({"path": ["type"], "message": "must be a lower-case provider name"})
    required_config, required_credentials = KNOWN_TYPES.get(cmd.type or "", ((), ()))
    for key in required_config:
        if not (cmd.config or {}).get(key):
            problems.append({"path": ["config", key], "message": "Required"})
    for key in required_credentials:
        if not (cmd.credentials or {}).get(key):
            problems.append({"path": ["credentials", key], "message": "Required"})
    if problems:
        raise errors.InvalidRequest("Invalid connection", details=problems)


async def create_connection(
    svc: Services, principal: Principal, cmd: WriteConnection
) -> ConnectionRow:
    """Raises InvalidRequest, Conflict when the id is taken."""
    principal.require("workflows:write")
    if not cmd.name or not cmd.type:
        raise errors.InvalidRequest("A connection needs a name and a type")
    _check(cmd)
    now = svc.clock.now()
    row = ConnectionRow(
        id=cmd.id or ids.new_id("conn"),
        project_id=principal.project_id,
        name=cmd.name,
        type=cmd.type,
        config=cmd.config or {},
        credentials_encrypted=svc.vault.encrypt(cmd.credentials or {}),
        created_at=now,
        updated_at=now,
    )
    try:
        await svc.store.insert_connection(row)
    except Duplicate as exc:
        raise errors.Conflict(f"A connection with id {row['id']!r} already exists") from exc
    return row


async def get_connection(svc: Services, principal: Principal, connection_id: str) -> ConnectionRow:
    principal.require("workflows:read")
    row = await svc.store.get_connection(principal.project_id, connection_id)
    if row is None:
        raise errors.NotFound("Connection not found")
    return row


async def list_connections(svc: Services, principal: Principal) -> list[ConnectionRow]:
    principal.require("workflows:read")
    return await svc.store.list_connections(principal.project_id)


async def update_connection(
    svc: Services, principal: Principal, connection_id: str, cmd: WriteConnection
) -> ConnectionRow:
    """PATCH: the fields given replace the stored ones (credentials are replaced whole)."""
    principal.require("workflows:write")
    current = await get_connection(svc, principal, connection_id)
    merged = WriteConnection(
        type=current["type"],
        config=cmd.config if cmd.config is not None else current["config"],
        credentials=cmd.credentials,
    )
    if cmd.credentials is not None:
        _check(merged)
    row = ConnectionRow(
        **{
            **current,
            "name": cmd.name or current["name"],
            "config": merged.config or {},
            "updated_at": svc.clock.now(),
        }
    )
    if cmd.credentials is not None:
        row["credentials_encrypted"] = svc.vault.encrypt(cmd.credentials)
    await svc.store.update_connection(row)
    return row


async def delete_connection(svc: Services, principal: Principal, connection_id: str) -> None:
    principal.require("workflows:write")
    if not await svc.store.delete_connection(principal.project_id, connection_id):
        raise errors.NotFound("Connection not found")


class ServiceConnections:
    """Connections for steps, credentials decrypted only for the step that uses them."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def get(
        self, project_id: str, connection_id: str, *, provider: str
    ) -> ConnectionView | None:
        """None when the connection does not exist; raises StepFailure when the credentials of
        a ``provider`` connection cannot be decrypted. Another type's are never decrypted: the
        step will not use them, and must not fail on them."""
        row = await self._svc.store.get_connection(project_id, connection_id)
        if row is None:
            return None
        return ConnectionView(
            id=row["id"],
            type=row["type"],
            config=row["config"],
            credentials=self._credentials(row) if row["type"] == provider else {},
        )

    def _credentials(self, row: ConnectionRow) -> JSONObject:
        """Raises StepFailure when they cannot be decrypted: a step never runs without them."""
        if row["credentials_encrypted"] is None:
            return {}  # stored without credentials
        try:
            credentials = self._svc.vault.decrypt(row["credentials_encrypted"])
        except VaultError as exc:
            # The reason names a key file at most, never the key or the credentials.
            reason = str(exc) if isinstance(exc, SecretKeyError) else "was the secret key changed?"
            raise StepFailure(
                f"The credentials of connection {row['id']!r} cannot be decrypted: {reason}"
            ) from exc
        if not isinstance(credentials, dict):
            raise StepFailure(
                f"The credentials of connection {row['id']!r} cannot be decrypted: not an object"
            )
        return credentials
