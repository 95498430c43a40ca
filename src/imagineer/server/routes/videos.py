"""Video jobs: animate an image (of a job, or uploaded), extend a clip, and make a reel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from imagineer.jobs import Job, JobState
from imagineer.server.auth import Principal
from imagineer.server.deps import PrincipalDep, ServerState, StateDep
from imagineer.server.errors import ApiError
from imagineer.server.media import BadUpload, save_upload, user_folder, video_result_of
from imagineer.server.routes.images import check_form
from imagineer.server.routes.jobs import IdempotencyKey, source_image, submit_one
from imagineer.server.schemas import (
    MAX_PROMPT_CHARS,
    AnimateCreate,
    ExtendCreate,
    JobPublic,
    ReelCreate,
    VideoFormat,
)
from imagineer.server.submit import out_dir
from imagineer.service.jobs import CLIP_SECONDS, AnimateJob, ExtendJob, ReelJob

router = APIRouter(tags=["videos"])

UPLOAD_FIELDS = frozenset(
    {"image", "end", "prompt", "motion", "loop", "seconds", "formats", "steps"}
)


@router.post("/v1/jobs/{job_id}/animate", status_code=202)
def animate_job(
    job_id: str,
    body: AnimateCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: a clip that starts on one image of a finished job (`imagineer animate`).
    `end` names an image of any of your finished jobs to end on; `loop` ends on the first."""
    source = source_image(state, principal, job_id, body.image)
    end = None
    if body.end is not None:
        end = str(source_image(state, principal, body.end.job, body.end.image))
    request = AnimateJob(
        str(source),
        prompt=body.prompt,
        motion=body.motion,
        loop=body.loop,
        end=end,
        seconds=body.seconds,
        formats=tuple(body.formats),
        out_dir=out_dir(state, principal),
        steps=body.steps,
    )
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


@router.post("/v1/jobs/{job_id}/extend", status_code=202)
def extend_job(
    job_id: str,
    body: ExtendCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: a clip of a finished video job and `seconds` more, continuing from its last
    frame (`imagineer extend`)."""
    source = _source_clip(state, principal, job_id, body.video)
    request = ExtendJob(
        str(source),
        seconds=body.seconds,
        prompt=body.prompt,
        motion=body.motion,
        formats=tuple(body.formats),
        out_dir=out_dir(state, principal),
        steps=body.steps,
    )
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


@router.post("/v1/videos/reel", status_code=202)
def reel(
    body: ReelCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: a finished reel from one prompt — a storyboard of shots, each a clip, cut
    and crossfaded at 24 fps (`imagineer reel`)."""
    request = ReelJob(
        body.prompt,
        seconds=body.seconds,
        formats=tuple(body.formats),
        out_dir=out_dir(state, principal),
        steps=body.steps,
    )
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


@router.post("/v1/videos/animate", status_code=202)
async def animate_upload(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP: the first frame")],
    end: Annotated[UploadFile | None, File(description="an image to end on")] = None,
    prompt: Annotated[
        str | None,
        Form(min_length=1, max_length=MAX_PROMPT_CHARS, description="needed without a recipe"),
    ] = None,
    motion: Annotated[Literal["low", "high"], Form()] = "low",
    loop: Annotated[bool, Form()] = False,
    seconds: Annotated[float, Form(ge=CLIP_SECONDS[0], le=CLIP_SECONDS[1])] = 5.0,
    formats: Annotated[list[VideoFormat] | None, Form()] = None,
    steps: Annotated[int | None, Form(ge=1)] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: a clip that starts on an uploaded image. An imagineer output keeps its
    recipe's prompt; any other picture needs `prompt`."""
    await check_form(request, UPLOAD_FIELDS)
    first = await _save(state, principal, image, "image")
    last = None if end is None else await _save(state, principal, end, "end")
    job = AnimateJob(
        first,
        prompt=prompt,
        motion=motion,
        loop=loop,
        end=last,
        seconds=seconds,
        formats=tuple(formats or ["mp4"]),
        out_dir=out_dir(state, principal),
        steps=steps,
    )
    return await run_in_threadpool(submit_one, state, principal, job, idempotency_key)


def _source_clip(state: ServerState, principal: Principal, job_id: str, index: int) -> Path:
    """The file of clip `index` of the caller's finished video job."""
    job: Job = state.service.job(job_id, user=principal.user_id)
    if job.state is not JobState.DONE:
        raise ApiError(
            409,
            f"job {job_id!r} is {job.state.value}: wait until it is done",
            code="job_not_done",
            extra={"state": job.state.value},
        )
    result = video_result_of(job)
    if result is None:
        raise ApiError(
            422,
            f"job {job_id!r} made images, not a clip: animate one with /v1/jobs/{{id}}/animate",
            code="unsupported_request",
        )
    if index >= len(result.videos):
        raise ApiError(
            422,
            f"video={index}: job {job_id!r} has clips 0 to {len(result.videos) - 1}",
            param="video",
        )
    path = result.videos[index].path
    if not path.is_file():
        raise ApiError(410, f"clip {index} of job {job_id!r} is gone", code="file_gone")
    return path


async def _save(state: ServerState, principal: Principal, upload: UploadFile, field: str) -> str:
    """Keep an uploaded image in the caller's uploads folder; 422 when it is not one."""
    limit = state.options.max_upload_bytes
    data = await upload.read(limit + 1)
    folder = user_folder(state.media_dir, principal.user_id) / "uploads"
    try:
        path = await run_in_threadpool(save_upload, data, folder, max_bytes=limit)
    except BadUpload as exc:
        raise ApiError(422, str(exc), code="invalid_value", param=field) from None
    return str(path)
