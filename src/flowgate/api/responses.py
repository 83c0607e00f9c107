"""Responses rendered with orjson (``jsonvalue``), and the success envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse as StarletteJSONResponse

from flowgate import jsonvalue
from flowgate.types import JSON


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonvalue.dumps(content)


def ok(
    data: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status_code, headers=headers)


def page(items: list[JSON], *, has_more: bool, next_cursor: str | None) -> JSONResponse:
    return JSONResponse(
        {"success": True, "data": items, "hasMore": has_more, "nextCursor": next_cursor}
    )
