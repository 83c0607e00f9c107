"""``/api/v1/files/{fileId}``: file parts of multipart webhook calls, served to keys of the
trigger's project (DESIGN §4)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import FileResponse

from flowgate.api.deps import PrincipalDep, ServicesDep
from flowgate.service import uploads

router = APIRouter(prefix="/api/v1", tags=["files"])


@router.get(
    "/files/{file_id}",
    summary="Download a file uploaded to a webhook",
    response_class=FileResponse,
)
async def get_file(file_id: str, svc: ServicesDep, who: PrincipalDep) -> FileResponse:
    stored = await uploads.open_file(svc, who, file_id)
    # As an attachment, and never sniffed: the sender chose the content type.
    return FileResponse(
        stored.path,
        media_type=stored.row["content_type"],
        filename=stored.row["filename"],
        headers={"X-Content-Type-Options": "nosniff"},
    )
