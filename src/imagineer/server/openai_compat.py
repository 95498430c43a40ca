"""OpenAI's image API in imagineer's terms: size → --ar, quality → --q, style → --raw, and
waiting for the queued jobs to answer with base64 images or signed links."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Final

from fastapi.concurrency import run_in_threadpool

from imagineer.jobs import Job, JobState
from imagineer.server.deps import ServerState
from imagineer.server.errors import ApiError
from imagineer.server.media import result_of
from imagineer.server.schemas import ImageData, ImageGenerationRequest, ResponseFormat
from imagineer.server.signals import wait_for_change
from imagineer.service.plan import GRID_SIZE

QUALITY_FLAGS: Final = {"hd": "--q 2", "high": "--q 2", "low": "--q 0.5"}  # others: --q 1
MAX_SIDE = 8192
MAX_ASPECT_TERM = 16  # 1792x1024 → 7:4; odd sizes snap to the nearest ratio of small numbers
WAIT_POLL_S = 0.1
_SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")


def grid_count(n: int) -> int:
    """Jobs needed for n images: each job renders one 2x2 grid."""
    return math.ceil(n / GRID_SIZE)


def aspect_for_size(size: str) -> str:
    """ "1792x1024" → "7:4": the --ar that the engine renders at its own size for that shape."""
    match = _SIZE.fullmatch(size.strip().lower())
    if match is None:
        raise ApiError(
            400, f"size={size!r}: use WIDTHxHEIGHT such as 1024x1024, or auto", param="size"
        )
    width, height = int(match[1]), int(match[2])
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ApiError(400, f"size={size!r}: each side must be 1 to {MAX_SIDE}", param="size")
    ratio = Fraction(width, height).limit_denominator(MAX_ASPECT_TERM)
    if not Fraction(1, 4) <= ratio <= 4:
        raise ApiError(400, f"size={size!r}: keep the shape between 1:4 and 4:1", param="size")
    return f"{ratio.numerator}:{ratio.denominator}"


def generation_prompt(body: ImageGenerationRequest, grid: int) -> str:
    """The imagineer prompt of grid number `grid` of a generation request."""
    flags = []
    if body.size is not None and body.size != "auto":
        flags.append(f"--ar {aspect_for_size(body.size)}")
    if body.quality in QUALITY_FLAGS:
        flags.append(QUALITY_FLAGS[body.quality])
    if body.style == "natural":
        flags.append("--raw")
    if body.model is not None:
        flags.append(f"--model {body.model}")
    if body.negative_prompt is not None:
        if "--" in body.negative_prompt or "::" in body.negative_prompt:
            raise ApiError(
                400,
                "negative_prompt: plain words only (no -- parameters or :: weights)",
                param="negative_prompt",
            )
        flags.append(f"--no {body.negative_prompt}")
    if body.seed is not None:  # each further grid continues where the last one's seeds ended
        flags.append(f"--seed {body.seed + grid * GRID_SIZE}")
    return " ".join([body.prompt.strip(), *flags])


async def wait_for_jobs(state: ServerState, jobs: Sequence[Job], timeout_s: float) -> list[Job]:
    """The jobs once all are done; 500 when one failed, 504 (cancelling them) on timeout."""
    deadline = time.monotonic() + timeout_s
    with state.signals.watching(job.id for job in jobs) as changed:
        return await _wait(state, jobs, changed, deadline, timeout_s)


async def _wait(
    state: ServerState,
    jobs: Sequence[Job],
    changed: asyncio.Event,
    deadline: float,
    timeout_s: float,
) -> list[Job]:
    while True:
        now = [
            await run_in_threadpool(state.store.get, job.id, user_id=job.user_id) for job in jobs
        ]
        if all(job.state.finished for job in now):
            break
        if time.monotonic() > deadline:
            for job in now:
                if not job.state.finished:
                    await run_in_threadpool(state.store.cancel, job.id, user_id=job.user_id)
            raise ApiError(
                504,
                f"the images were not ready within {timeout_s:g} s (is a worker running?)",
                code="timeout",
            )
        await wait_for_change(changed, WAIT_POLL_S)  # woken by this process's worker
    for job in now:
        if job.state is not JobState.DONE:
            why = f": {job.error}" if job.error else ""
            raise ApiError(500, f"job {job.id} {job.state.value}{why}", code="generation_failed")
    return now


def image_data(
    state: ServerState,
    jobs: Sequence[Job],
    n: int,
    response_format: ResponseFormat,
    base_url: str,
) -> list[ImageData]:
    """The first n images of the jobs, as base64 PNGs or signed links."""
    expires = int(time.time()) + state.options.url_ttl_s
    data: list[ImageData] = []
    for job in jobs:
        result = result_of(job)
        for image in result.images if result is not None else ():
            if len(data) == n:
                return data
            prompt = image.recipe.prompt
            if response_format == "b64_json":
                encoded = base64.b64encode(image.path.read_bytes()).decode("ascii")
                data.append(ImageData(b64_json=encoded, revised_prompt=prompt))
            else:
                link = state.signer.signed_path(job.id, image.path.name, expires)
                data.append(ImageData(url=base_url.rstrip("/") + link, revised_prompt=prompt))
    return data
