"""/v1/uploads: keep an image for the caller's prompts to name (`--sref upload:ID`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from imagineer.server.deps import PrincipalDep, StateDep
from imagineer.server.errors import ApiError
from imagineer.server.media import BadUpload, save_upload, user_folder
from imagineer.server.routes.images import check_form
from imagineer.server.schemas import UploadPublic

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


@router.post("", status_code=201)
async def upload(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP")],
) -> UploadPublic:
    """Keep an image in the caller's uploads; a prompt names it as `--sref upload:ID`, and
    only prompts sent with a key of the same user can."""
    await check_form(request, frozenset({"image"}))
    limit = state.options.max_upload_bytes
    data = await image.read(limit + 1)
    folder = user_folder(state.media_dir, principal.user_id) / "uploads"
    try:
        path = await run_in_threadpool(save_upload, data, folder, max_bytes=limit)
    except BadUpload as exc:
        raise ApiError(422, str(exc), code="invalid_value", param="image") from None
    width, height = await run_in_threadpool(_size, path)
    upload_id = path.stem
    return UploadPublic(
        id=upload_id, sref=f"upload:{upload_id}", width=width, height=height, bytes=len(data)
    )


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size
