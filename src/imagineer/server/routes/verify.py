"""/v1/verify: upload a file, get back what its marks (manifest, watermark, labels, recipe) say."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from imagineer.server.deps import PrincipalDep, StateDep
from imagineer.server.errors import ApiError
from imagineer.service import Service

router = APIRouter(prefix="/v1", tags=["verify"])

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".mov"})


@router.post("/verify")
async def verify_upload(
    file: Annotated[UploadFile, File(description="The image or clip to check.")],
    state: StateDep,
    _principal: PrincipalDep,
) -> dict[str, Any]:
    """The verdict, as `imagineer verify --json` prints it (its path is the upload's name)."""
    name = PurePath(file.filename or "upload").name
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ApiError(
            422, f"{name!r}: send a file ending {', '.join(sorted(SUFFIXES))}", param="file"
        )
    limit = state.options.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"the upload is over {limit} bytes", param="file")
    return await run_in_threadpool(_verify, state.service, data, suffix, name)


def _verify(service: Service, data: bytes, suffix: str, name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imagineer-verify-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        verdict = service.verify(path)
    # The verdict holds dataclasses and enums: JSON with str() for the odd value, as the CLI.
    result: dict[str, Any] = json.loads(json.dumps(verdict.to_dict(), default=str))
    result["path"] = name
    result["details"] = [line.replace(str(path), name) for line in result.get("details", [])]
    return result
