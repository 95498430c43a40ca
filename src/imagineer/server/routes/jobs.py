"""/v1/jobs: create, read, list, cancel and delete jobs, and vary/upscale/remix their images."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from imagineer.jobs import Job, JobState
from imagineer.server.auth import Principal
from imagineer.server.deps import PrincipalDep, ServerState, StateDep
from imagineer.server.errors import ApiError
from imagineer.server.media import delete_job_files, result_of, video_result_of
from imagineer.server.schemas import (
    JobCreate,
    JobPublic,
    JobsPublic,
    RemixCreate,
    UpscaleCreate,
    VaryCreate,
)
from imagineer.server.submit import out_dir, submit_jobs
from imagineer.service import ImagineJob, JobRequest, RemixJob, UpscaleJob, VaryJob

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_BODY_BYTES = 64 * 1024
SEARCH_PAGE = 100  # jobs read per query while searching
SEARCH_SCAN = 1000  # at most this many jobs are read to answer one page of a search
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=256, description="Repeat it to get the same job."),
]
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JobCreate.model_json_schema()},
            "text/plain": {"schema": {"type": "string", "example": "a red fox --ar 16:9"}},
        },
    }
}


@router.post("", status_code=202, openapi_extra=_BODY_DOC)
async def create_job(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """Queue a prompt: a text/plain body, or JSON {"prompt": …, "steps": …}."""
    body = await _job_create(request)
    job_request = ImagineJob(body.prompt, out_dir=out_dir(state, principal), steps=body.steps)
    return await run_in_threadpool(
        submit_one, state, principal, job_request, idempotency_key, body.webhook_url
    )


@router.get("")
def list_jobs(
    state: StateDep,
    principal: PrincipalDep,
    job_state: Annotated[JobState | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[datetime | None, Query(description="next_cursor of the last page")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="only jobs whose prompt or kind has all these words"),
    ] = None,
) -> JobsPublic:
    """The caller's jobs, newest first."""
    if before is not None and before.tzinfo is None:
        raise ApiError(422, "before: give a time with its zone, e.g. …+00:00", param="before")
    words = q.casefold().split() if q else []
    if words:
        jobs, cursor = _search(state, principal, job_state, words, limit, before)
        return JobsPublic(data=[JobPublic.from_job(job) for job in jobs], next_cursor=cursor)
    jobs = state.store.list(user_id=principal.user_id, state=job_state, limit=limit, before=before)
    cursor = jobs[-1].created_at.isoformat() if len(jobs) == limit else None
    return JobsPublic(data=[JobPublic.from_job(job) for job in jobs], next_cursor=cursor)


def _search(
    state: ServerState,
    principal: Principal,
    job_state: JobState | None,
    words: list[str],
    limit: int,
    before: datetime | None,
) -> tuple[list[Job], str | None]:
    """Up to `limit` matching jobs, newest first, reading at most SEARCH_SCAN jobs; the cursor
    is where reading stopped (None once every job was read)."""
    found: list[Job] = []
    scanned = 0
    cursor = before
    while scanned < SEARCH_SCAN:
        page = state.store.list(
            user_id=principal.user_id, state=job_state, limit=SEARCH_PAGE, before=cursor
        )
        for job in page:
            scanned += 1
            cursor = job.created_at
            if all(word in _search_text(job) for word in words):
                found.append(job)
                if len(found) == limit:
                    return found, cursor.isoformat()
        if len(page) < SEARCH_PAGE:
            return found, None
    return found, None if cursor is None else cursor.isoformat()


def _search_text(job: Job) -> str:
    """What a search looks in: the kind, the prompt asked for and the prompts that ran."""
    prompt = job.payload.get("prompt")
    parts = [job.kind, prompt if isinstance(prompt, str) else ""]
    result, video = result_of(job), video_result_of(job)
    if result is not None:
        parts += [image.recipe.prompt for image in result.images]
    if video is not None:
        parts += [clip.recipe.prompt for clip in video.videos[:1]]
    return " ".join(parts).casefold()


@router.get("/{job_id}")
def get_job(job_id: str, state: StateDep, principal: PrincipalDep) -> JobPublic:
    return JobPublic.from_job(state.service.job(job_id, user=principal.user_id))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, state: StateDep, principal: PrincipalDep) -> JobPublic:
    """Cancel a queued job now, or ask a running one to stop at its next step."""
    return JobPublic.from_job(state.service.cancel(job_id, user=principal.user_id))


@router.delete("/{job_id}", status_code=204)
def delete_job(job_id: str, state: StateDep, principal: PrincipalDep) -> Response:
    """Forget a job that is not running, and delete its files."""
    job = state.service.job(job_id, user=principal.user_id)
    state.store.delete(job_id, user_id=principal.user_id)
    delete_job_files(job, state.media_dir, state.settings.output_dir)
    return Response(status_code=204)


@router.post("/{job_id}/vary", status_code=202)
def vary_job(
    job_id: str,
    body: VaryCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: a 2x2 grid of variations of one image of a finished job."""
    source = source_image(state, principal, job_id, body.image)
    request = VaryJob(
        str(source),
        strength=body.strength,
        prompt=body.prompt,
        out_dir=out_dir(state, principal),
        steps=body.steps,
    )
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


@router.post("/{job_id}/upscale", status_code=202)
def upscale_job(
    job_id: str,
    body: UpscaleCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: one image of a finished job at 2x or 4x."""
    source = source_image(state, principal, job_id, body.image)
    request = UpscaleJob(str(source), factor=body.factor, out_dir=out_dir(state, principal))
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


@router.post("/{job_id}/remix", status_code=202)
def remix_job(
    job_id: str,
    body: RemixCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """A new job: re-render one image's grid from its recipe, optionally with a new prompt."""
    source = source_image(state, principal, job_id, body.image)
    request = RemixJob(
        str(source), prompt=body.prompt, out_dir=out_dir(state, principal), steps=body.steps
    )
    return submit_one(state, principal, request, idempotency_key, body.webhook_url)


def submit_one(
    state: ServerState,
    principal: Principal,
    request: JobRequest,
    idempotency_key: str | None,
    webhook_url: str | None = None,
) -> JobPublic:
    """Queue one request as the caller's job (quota, limits, idempotency) and show it."""
    (job,) = submit_jobs(
        state, principal, [request], idempotency_key=idempotency_key, webhook_url=webhook_url
    )
    return JobPublic.from_job(job)


def source_image(state: ServerState, principal: Principal, job_id: str, index: int) -> Path:
    """The file of image `index` of the caller's finished job."""
    job: Job = state.service.job(job_id, user=principal.user_id)
    result = result_of(job)
    if job.state is JobState.DONE and video_result_of(job) is not None:
        raise ApiError(
            422,
            f"job {job_id!r} made a clip, not images: extend it with /v1/jobs/{{id}}/extend",
            code="unsupported_request",
        )
    if job.state is not JobState.DONE or result is None:
        raise ApiError(
            409,
            f"job {job_id!r} is {job.state.value}: wait until it is done",
            code="job_not_done",
            extra={"state": job.state.value},
        )
    if index >= len(result.images):
        raise ApiError(
            422,
            f"image={index}: job {job_id!r} has images 0 to {len(result.images) - 1}",
            param="image",
        )
    path = result.images[index].path
    if not path.is_file():
        raise ApiError(410, f"image {index} of job {job_id!r} is gone", code="file_gone")
    return path


async def _job_create(request: Request) -> JobCreate:
    """The body of POST /v1/jobs: plain text is the prompt; JSON is a JobCreate."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {size} bytes: keep it under {MAX_BODY_BYTES}")
    raw = await request.body()
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        if kind == "text/plain":
            return JobCreate(prompt=raw.decode("utf-8"))
        if kind == "application/json":
            return JobCreate.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    except UnicodeDecodeError:
        raise ApiError(400, "the prompt is not UTF-8 text", param="prompt") from None
    raise ApiError(415, f"content type {kind!r}: send application/json or text/plain")
