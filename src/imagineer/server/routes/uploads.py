"""/v1/uploads: keep, list and delete the images a caller's prompts name (`--sref upload:ID`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from imagineer.jobs import Job, JobState, JobStore
from imagineer.server.deps import PrincipalDep, StateDep
from imagineer.server.errors import ApiError
from imagineer.server.media import (
    UPLOAD_ID,
    BadUpload,
    find_upload,
    list_uploads,
    read_upload,
    save_upload,
    user_folder,
)
from imagineer.server.routes.images import check_form
from imagineer.server.schemas import ErrorPublic, UploadPublic, UploadsPublic
from imagineer.service import from_payload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

PAGE = 200  # jobs read per query while looking for the ones that pin an upload
UploadId = Annotated[
    str, PathParam(pattern=f"^{UPLOAD_ID.pattern}$", description="the id POST /v1/uploads gave")
]


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, by status: `_errors(e404="…")`."""
    return {int(s[1:]): {"model": ErrorPublic, "description": d} for s, d in described.items()}


@router.post(
    "",
    status_code=201,
    summary="Upload a style reference",
    responses=_errors(
        e400="a form field other than `image`",
        e401="no key outside local mode, or an unknown key",
        e422="not a PNG, JPEG or WebP image, empty, or over the size or pixel limit",
    ),
)
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
    folder = _folder(state.media_dir, principal.user_id)
    try:
        path = await run_in_threadpool(save_upload, data, folder, max_bytes=limit)
    except BadUpload as exc:
        raise ApiError(422, str(exc), code="invalid_value", param="image") from None
    return UploadPublic.from_upload(await run_in_threadpool(read_upload, path))


@router.get(
    "",
    summary="List your uploads",
    responses=_errors(e401="no key outside local mode, or an unknown key"),
)
def uploads(state: StateDep, principal: PrincipalDep) -> UploadsPublic:
    """The caller's uploads, newest first; other users' uploads are never listed."""
    found = list_uploads(_folder(state.media_dir, principal.user_id))
    return UploadsPublic(data=[UploadPublic.from_upload(upload) for upload in found])


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an upload",
    responses=_errors(
        e401="no key outside local mode, or an unknown key",
        e404="you have no upload with this id (another user's reads the same)",
        e409="a queued or running job of yours still uses it: `jobs` lists them",
        e422="not an upload id",
    ),
)
def delete_upload(upload_id: UploadId, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete one of the caller's uploads, unless a queued or running job of theirs pinned it
    as a `--sref` (409: let the jobs end, or cancel them, then delete it). Finished jobs keep
    their images; prompts that name the upload are refused from now on."""
    path = find_upload(_folder(state.media_dir, principal.user_id), upload_id)
    if path is None:
        raise ApiError(404, f"you have no upload {upload_id!r}", code="upload_not_found")
    holders = jobs_pinning(state.store, principal.user_id, path)
    if holders:
        raise ApiError(
            409,
            f"upload {upload_id!r} is a style reference of your unfinished job(s) "
            f"{', '.join(holders)}: wait until they end, or cancel them, then delete it",
            code="upload_in_use",
            extra={"jobs": holders},
        )
    path.unlink(missing_ok=True)
    return Response(status_code=204)


def jobs_pinning(store: JobStore, user_id: str, path: Path) -> list[str]:
    """The ids of the user's queued and running jobs that pinned this file as a --sref (their
    workers read it from that path, so it must stay until they end)."""
    target = path.resolve()
    holders = []
    for job in _unfinished(store, user_id):
        try:
            request = from_payload(job.kind, job.payload)
        except ValueError:  # a kind this server does not know pins nothing it can read
            continue
        pins = getattr(request, "sref", None) or ()
        if any(Path(pin.path).resolve() == target for pin in pins):
            holders.append(job.id)
    return holders


def _unfinished(store: JobStore, user_id: str) -> Iterator[Job]:
    """Every queued and running job of the user, each once. Queued ones are read before and
    after the running ones, so a job claimed or requeued for a retry meanwhile is not missed;
    pages overlap by a microsecond, so jobs made in the same instant are not skipped."""
    seen: set[str] = set()
    for state in (JobState.QUEUED, JobState.RUNNING, JobState.QUEUED):
        before = None
        while True:
            page = store.list(user_id=user_id, state=state, limit=PAGE, before=before)
            for job in page:
                if job.id not in seen:
                    seen.add(job.id)
                    yield job
            if len(page) < PAGE:
                break
            after = page[-1].created_at + timedelta(microseconds=1)
            if after == before:  # a whole page made in one instant: no way past it
                break
            before = after


def _folder(media_dir: Path, user_id: str) -> Path:
    return user_folder(media_dir, user_id) / "uploads"
