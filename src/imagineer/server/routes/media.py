"""/v1/media/{job}/{name}: the files a job made, with HTTP range requests, for their owner
or for anyone holding an unexpired signed link."""

from __future__ import annotations

import mimetypes
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from imagineer.jobs import Job
from imagineer.server.deps import StateDep, get_principal
from imagineer.server.errors import ApiError
from imagineer.server.media import job_files

router = APIRouter(prefix="/v1/media", tags=["media"])


@router.get("/{job_id}/{name}", response_class=FileResponse)
def get_media(
    job_id: str,
    name: str,
    request: Request,
    state: StateDep,
    expires: Annotated[int | None, Query()] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
) -> FileResponse:
    """One output file (Range requests are answered with 206 Partial Content)."""
    job: Job
    if signature is not None and expires is not None:
        if not state.signer.valid(job_id, name, expires, signature, time.time()):
            raise ApiError(403, "the link has expired or is not valid", code="invalid_signature")
        job = state.store.get(job_id)
    else:
        principal = get_principal(request, state)
        job = state.service.job(job_id, user=principal.user_id)
    path = job_files(job).get(name)
    if path is None or not path.is_file():
        raise ApiError(404, f"job {job_id!r} has no file {name!r}", code="file_not_found")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=kind, filename=name, content_disposition_type="inline")
