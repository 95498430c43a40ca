"""The API's request and response bodies: JobCreate → JobPublic, and OpenAI's image shapes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagineer.jobs import Job
from imagineer.media.images import sidecar_path
from imagineer.prompts.params import MAX_SEED
from imagineer.server.media import Upload, media_path, result_of, video_result_of
from imagineer.server.webhooks import MAX_URL_LEN, check_url
from imagineer.service import GenerationResult, ModelSummary, from_payload
from imagineer.service.jobs import CLIP_SECONDS, REEL_SECONDS
from imagineer.service.video import VideoResult

MAX_PROMPT_CHARS = 4000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # unknown fields are errors, never ignored


class _Notified(_Strict):
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_LEN,
        description="POST a signed event here when the job is done, failed or cancelled",
    )

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url)


# --- jobs -------------------------------------------------------------------------------------


class JobCreate(_Notified):
    """POST /v1/jobs as JSON; a text/plain body is the prompt alone."""

    kind: Literal["imagine"] = "imagine"
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    steps: int | None = Field(default=None, ge=1, description="overrides --q and --draft")


class _FromImage(_Notified):
    image: int = Field(default=0, ge=0, description="which image of the job's result")


class VaryCreate(_FromImage):
    strength: Literal["subtle", "strong"] = "subtle"
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)
    steps: int | None = Field(default=None, ge=1)


class UpscaleCreate(_FromImage):
    factor: Literal[2, 4] = 2


class RemixCreate(_FromImage):
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)
    steps: int | None = Field(default=None, ge=1)


# --- video jobs -------------------------------------------------------------------------------

VideoFormat = Literal["mp4", "webm", "gif"]


def _formats() -> Any:
    return Field(
        default=["mp4"],
        min_length=1,
        max_length=3,
        description="files to write; MP4 and GIF carry a C2PA manifest, WebM the watermark only",
    )


class _Clip(_Notified):
    prompt: str | None = Field(
        default=None, min_length=1, max_length=MAX_PROMPT_CHARS, description="default: the recipe's"
    )
    formats: list[VideoFormat] = _formats()
    steps: int | None = Field(default=None, ge=1, description="keyframe steps")


class ImageRef(_Strict):
    """An image of one of the caller's finished jobs."""

    job: str = Field(min_length=1, max_length=64)
    image: int = Field(default=0, ge=0)


class AnimateCreate(_Clip):
    """POST /v1/jobs/{id}/animate: a clip that starts on one image of the job."""

    image: int = Field(default=0, ge=0, description="which image of the job's result")
    motion: Literal["low", "high"] = "low"
    loop: bool = Field(default=False, description="end where it starts")
    end: ImageRef | None = Field(default=None, description="an image to end on")
    seconds: float = Field(default=5.0, ge=CLIP_SECONDS[0], le=CLIP_SECONDS[1])


class ExtendCreate(_Clip):
    """POST /v1/jobs/{id}/extend: the job's clip and `seconds` more."""

    video: int = Field(default=0, ge=0, description="which clip of the job's result")
    motion: Literal["low", "high"] | None = Field(default=None, description="default: the clip's")
    seconds: float = Field(default=4.0, ge=CLIP_SECONDS[0], le=CLIP_SECONDS[1])


class ReelCreate(_Notified):
    """POST /v1/videos/reel: a finished reel from one prompt."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    seconds: float = Field(default=10.0, ge=REEL_SECONDS[0], le=REEL_SECONDS[1])
    formats: list[VideoFormat] = _formats()
    steps: int | None = Field(default=None, ge=1, description="keyframe steps")


class UploadPublic(BaseModel):
    """An image the caller uploaded, for their prompts to name as a style reference."""

    id: str
    sref: str  # what a prompt writes: `--sref upload:ID`
    width: int
    height: int
    bytes: int
    created_at: datetime

    @classmethod
    def from_upload(cls, upload: Upload) -> UploadPublic:
        return cls(
            id=upload.id,
            sref=f"upload:{upload.id}",
            width=upload.width,
            height=upload.height,
            bytes=upload.bytes,
            created_at=upload.created_at,
        )


class UploadsPublic(BaseModel):
    data: list[UploadPublic]  # newest first


class Progress(BaseModel):
    step: int | None
    total: int | None
    fraction: float | None = None  # step / total, from 0 to 1


class FilePublic(BaseModel):
    name: str
    url: str  # needs the same key as the job


class ImagePublic(FilePublic):
    index: int  # position in the job's images: what vary/upscale/remix take as "image"
    seed: int
    width: int
    height: int
    prompt: str
    watermarked: bool
    signed: bool


class VideoPublic(FilePublic):
    index: int  # position in the job's videos: what extend takes as "video"
    format: str  # mp4, webm or gif
    frame_count: int
    fps: int
    seconds: float
    seed: int
    width: int
    height: int
    prompt: str
    watermarked: bool
    signed: bool
    recipe: FilePublic  # the recipe that re-renders it, as JSON


class ResultPublic(BaseModel):
    images: list[ImagePublic]
    grids: list[FilePublic]
    seeds: list[int]
    engine: str
    model_id: str
    warnings: list[str]
    withheld: list[str]
    timings: dict[str, float]
    videos: list[VideoPublic] = []  # a video job's clip, once per format asked for
    poster: FilePublic | None = None  # a video job's poster frame (PNG)
    contact_sheet: FilePublic | None = None  # frames of a video job across its length (PNG)

    @classmethod
    def from_video(cls, job_id: str, result: VideoResult) -> ResultPublic:
        def file(path: Path) -> FilePublic:
            return FilePublic(name=path.name, url=media_path(job_id, path.name))

        videos = [
            VideoPublic(
                **file(v.path).model_dump(),
                index=i,
                format=v.format,
                frame_count=v.frame_count,
                fps=v.fps,
                seconds=round(v.frame_count / v.fps, 3),
                seed=v.recipe.seed,
                width=v.recipe.width,
                height=v.recipe.height,
                prompt=v.recipe.prompt,
                watermarked=v.watermarked,
                signed=v.signed,
                recipe=file(sidecar_path(v.path)),
            )
            for i, v in enumerate(result.videos)
        ]
        return cls(
            images=[],
            grids=[],
            seeds=[result.seed],
            engine=result.engine,
            model_id=result.model_id,
            warnings=list(result.warnings),
            withheld=[],
            timings=result.timings.to_dict(),
            videos=videos,
            poster=file(result.poster.path),
            contact_sheet=file(result.contact_sheet.path),
        )

    @classmethod
    def from_result(cls, job_id: str, result: GenerationResult) -> ResultPublic:
        images = [
            ImagePublic(
                name=image.path.name,
                url=media_path(job_id, image.path.name),
                index=i,
                seed=image.recipe.seed,
                width=image.recipe.width,
                height=image.recipe.height,
                prompt=image.recipe.prompt,
                watermarked=image.watermarked,
                signed=image.signed,
            )
            for i, image in enumerate(result.images)
        ]
        grids = [FilePublic(name=p.name, url=media_path(job_id, p.name)) for p in result.grids]
        return cls(
            images=images,
            grids=grids,
            seeds=list(result.seeds),
            engine=result.engine,
            model_id=result.model_id,
            warnings=list(result.warnings),
            withheld=list(result.withheld),
            timings=result.timings.to_dict(),
        )


class JobPublic(BaseModel):
    """A job as its owner sees it (server paths never leave the server)."""

    id: str
    kind: str
    state: str  # queued, running, done, failed or cancelled
    prompt: str | None
    steps: int | None = None
    strength: str | None = None
    factor: int | None = None
    motion: str | None = None  # animate, extend
    loop: bool | None = None  # animate
    seconds: float | None = None  # animate, extend (added), reel
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    cancel_requested: bool
    attempts: int
    error: str | None
    result: ResultPublic | None
    webhook_url: str | None = None

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        try:
            request = from_payload(job.kind, job.payload)
        except ValueError:  # a kind this server does not know: show the rest
            request = None
        result = result_of(job)
        video = video_result_of(job)
        public = None
        if result is not None:
            public = ResultPublic.from_result(job.id, result)
        elif video is not None:
            public = ResultPublic.from_video(job.id, video)
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state.value,
            prompt=getattr(request, "prompt", None),
            steps=getattr(request, "steps", None),
            strength=getattr(request, "strength", None),
            factor=getattr(request, "factor", None),
            motion=getattr(request, "motion", None),
            loop=getattr(request, "loop", None),
            seconds=getattr(request, "seconds", None),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            progress=Progress(
                step=job.progress_step,
                total=job.progress_total,
                fraction=fraction(job.progress_step, job.progress_total),
            ),
            cancel_requested=job.cancel_requested,
            attempts=job.attempts,
            error=job.error,
            result=public,
            webhook_url=job.webhook_url,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None  # pass as ?before= for the next page; None on the last page


def fraction(step: int | None, total: int | None) -> float | None:
    """How far a job is, from 0 to 1; None before it reports."""
    if step is None or not total:
        return None
    return round(min(step, total) / total, 4)


class ProgressEvent(BaseModel):
    """One `state` event of GET /v1/jobs/{id}/events."""

    id: str
    state: str
    step: int | None
    total: int | None
    fraction: float | None = None  # step / total, from 0 to 1 (video jobs count thousandths)


class PreviewEvent(BaseModel):
    """One `preview` event of GET /v1/jobs/{id}/events: the image in progress."""

    id: str
    step: int  # the progress the preview was made at
    total: int
    image: str  # a data: URL of a small PNG (at most 256 px a side)


# --- prompts ----------------------------------------------------------------------------------


class PromptParse(_Strict):
    """POST /v1/prompts/parse: check a prompt without queueing it."""

    prompt: str = Field(max_length=MAX_PROMPT_CHARS)


class PromptProblem(BaseModel):
    """Why a prompt cannot run; span, token and suggestion point into the prompt text."""

    code: Literal["prompt_error", "unsupported_request"]
    message: str  # with the suggestion, if any
    caret: str | None  # the prompt line and a caret line under the bad token, as the CLI prints
    span: tuple[int, int] | None  # [start, end) character offsets of the bad token
    token: str | None
    suggestion: str | None


class ParsedPrompt(BaseModel):
    """One request of a prompt (permutations and --repeat make several)."""

    canonical: str  # the request written back in the prompt language
    request: dict[str, Any]  # the typed request as JSON (imagineer.prompts.Request.to_dict)
    warnings: list[str]


class PromptCheck(BaseModel):
    valid: bool
    requests: list[ParsedPrompt]  # empty when the prompt is not valid
    error: PromptProblem | None


# --- models, health -----------------------------------------------------------------------------


class ModelPublic(BaseModel):
    """A model in OpenAI's list shape, with imagineer's own fields beside."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "imagineer"
    family: str
    capabilities: list[str]
    available: bool
    why_not: str | None
    default: bool
    description: str

    @classmethod
    def from_summary(cls, m: ModelSummary) -> ModelPublic:
        return cls(
            id=m.name,
            family=m.family,
            capabilities=list(m.capabilities),
            available=m.available,
            why_not=m.why_not,
            default=m.default,
            description=m.description,
        )


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    worker: Literal["running", "stopped", "off"]  # off: separate worker processes run jobs


# --- OpenAI-compatible images ---------------------------------------------------------------------

Quality = Literal["standard", "hd", "low", "medium", "high", "auto"]
ResponseFormat = Literal["b64_json", "url"]


class ImageGenerationRequest(_Strict):
    """POST /v1/images/generations; seed, negative_prompt and steps are imagineer's extras."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = None  # an imagineer model name (GET /v1/models); None: the default
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None  # "WIDTHxHEIGHT" sets the aspect ratio, or "auto"
    quality: Quality | None = None
    style: Literal["vivid", "natural"] | None = None
    response_format: ResponseFormat = "url"
    user: str | None = Field(default=None, max_length=256)  # accepted, not used
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    negative_prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)
    steps: int | None = Field(default=None, ge=1)


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None  # the canonical prompt that ran


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]


# --- errors -------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong; some codes add their own fields (a prompt error's span, a job's state)."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    code: str | None
    param: str | None


class ErrorPublic(BaseModel):
    """Every error answer: OpenAI's shape."""

    error: ErrorDetail
