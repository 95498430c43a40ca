"""/v1/images/*: OpenAI-compatible generations, edits and variations over imagineer's jobs."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from imagineer.jobs import Job
from imagineer.server.auth import Principal
from imagineer.server.deps import PrincipalDep, ServerState, StateDep
from imagineer.server.errors import ApiError
from imagineer.server.media import BadUpload, save_upload, user_folder
from imagineer.server.openai_compat import (
    generation_prompt,
    grid_count,
    image_data,
    wait_for_jobs,
)
from imagineer.server.schemas import (
    ImageGenerationRequest,
    ImagesResponse,
    ResponseFormat,
)
from imagineer.server.submit import out_dir, submit_jobs
from imagineer.service import ImagineJob, JobRequest, RemixJob, VaryJob

router = APIRouter(prefix="/v1/images", tags=["openai"])

Strength = Literal["subtle", "strong"]
N = Annotated[int, Form(ge=1, le=10)]
Steps = Annotated[int | None, Form(ge=1)]
Text = Annotated[str | None, Form(min_length=1, max_length=4000)]
EDIT_FIELDS = frozenset(
    {"image", "prompt", "mask", "model", "n", "size", "response_format", "user"}
    | {"strength", "steps", "mode"}
)
VARIATION_FIELDS = frozenset(
    {"image", "model", "n", "size", "response_format", "user", "strength", "steps", "prompt"}
)


@router.post("/generations", response_model_exclude_none=True)
async def generations(
    body: ImageGenerationRequest, request: Request, state: StateDep, principal: PrincipalDep
) -> ImagesResponse:
    """n images (one 2x2 grid job per four) for a prompt; size sets the aspect ratio."""
    if body.model is not None and body.model not in _model_names(state):
        raise ApiError(
            400,
            f"model={body.model!r} is not installed here; GET /v1/models lists the names",
            code="model_not_found",
            param="model",
        )
    folder = out_dir(state, principal)
    requests: list[JobRequest] = [
        ImagineJob(generation_prompt(body, grid), out_dir=folder, steps=body.steps)
        for grid in range(grid_count(body.n))
    ]
    return await _answer(state, principal, request, requests, body.n, body.response_format)


@router.post("/edits", response_model_exclude_none=True)
async def edits(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    image: Annotated[UploadFile, File()],
    prompt: Annotated[str, Form(min_length=1, max_length=4000)],
    mask: Annotated[UploadFile | None, File()] = None,
    model: Annotated[str | None, Form()] = None,
    n: N = 1,
    size: Annotated[str | None, Form()] = None,
    response_format: Annotated[ResponseFormat, Form()] = "url",
    user: Annotated[str | None, Form(max_length=256)] = None,
    strength: Annotated[Strength, Form()] = "strong",
    steps: Steps = None,
    mode: Annotated[Literal["vary", "remix"], Form()] = "vary",
) -> ImagesResponse:
    """The uploaded image redrawn with a prompt: vary (image-to-image, default) or remix
    (re-render an imagineer output's recipe with the new prompt at its seeds)."""
    await check_form(request, EDIT_FIELDS)
    if mask is not None:
        raise ApiError(400, "mask: inpainting is not supported yet; leave it out", param="mask")
    _check_same_model_and_size(model, size)
    if mode == "remix" and n > 4:
        raise ApiError(400, "n: a remix re-renders one grid of 4 images; use n <= 4", param="n")
    path = await _save(state, principal, image)
    folder = out_dir(state, principal)
    requests: list[JobRequest]
    if mode == "remix":
        requests = [RemixJob(path, prompt=prompt, out_dir=folder, steps=steps)]
    else:
        requests = [
            VaryJob(path, strength=strength, prompt=prompt, out_dir=folder, steps=steps)
            for _ in range(grid_count(n))
        ]
    return await _answer(state, principal, request, requests, n, response_format)


@router.post("/variations", response_model_exclude_none=True)
async def variations(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    image: Annotated[UploadFile, File()],
    model: Annotated[str | None, Form()] = None,
    n: N = 1,
    size: Annotated[str | None, Form()] = None,
    response_format: Annotated[ResponseFormat, Form()] = "url",
    user: Annotated[str | None, Form(max_length=256)] = None,
    strength: Annotated[Strength, Form()] = "subtle",
    steps: Steps = None,
    prompt: Text = None,
) -> ImagesResponse:
    """Variations of the uploaded image with new seeds (its recipe's prompt, or `prompt`)."""
    await check_form(request, VARIATION_FIELDS)
    _check_same_model_and_size(model, size)
    path = await _save(state, principal, image)
    folder = out_dir(state, principal)
    requests: list[JobRequest] = [
        VaryJob(path, strength=strength, prompt=prompt, out_dir=folder, steps=steps)
        for _ in range(grid_count(n))
    ]
    return await _answer(state, principal, request, requests, n, response_format)


async def _answer(
    state: ServerState,
    principal: Principal,
    request: Request,
    requests: list[JobRequest],
    n: int,
    response_format: ResponseFormat,
) -> ImagesResponse:
    """Queue the jobs, wait for them, answer with their first n images."""
    created = int(time.time())
    jobs: list[Job] = await run_in_threadpool(submit_jobs, state, principal, requests)
    done = await wait_for_jobs(state, jobs, state.options.sync_timeout_s)
    base = str(request.base_url)
    data = await run_in_threadpool(image_data, state, done, n, response_format, base)
    return ImagesResponse(created=created, data=data)


async def _save(state: ServerState, principal: Principal, upload: UploadFile) -> str:
    limit = state.options.max_upload_bytes
    data = await upload.read(limit + 1)
    folder = user_folder(state.media_dir, principal.user_id) / "uploads"
    try:
        path = await run_in_threadpool(save_upload, data, folder, max_bytes=limit)
    except BadUpload as exc:
        raise ApiError(400, str(exc), param="image") from None
    return str(path)


async def check_form(request: Request, known: frozenset[str]) -> None:
    """Unknown form fields are errors, as unknown JSON fields are."""
    form = await request.form()
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {', '.join(unknown)}: this route takes {', '.join(sorted(known))}",
            param=unknown[0],
        )


def _check_same_model_and_size(model: str | None, size: str | None) -> None:
    if model is not None:
        raise ApiError(
            400,
            "model: edits and variations use the model the image was made with; leave it out",
            param="model",
        )
    if size not in (None, "auto"):
        raise ApiError(
            400, "size: edits and variations keep the image's own size; leave it out", param="size"
        )


def _model_names(state: ServerState) -> set[str]:
    return {spec.name for spec in state.runtime.registry.specs()}
