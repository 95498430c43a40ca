"""Video jobs in the queue: what is checked when one is queued, and how a worker runs it.

Both go through the same VideoMaker as `imagineer animate | extend | reel`, so a queued clip
is made, marked and written exactly as the CLI's is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from imagineer.media.images import read_recipe
from imagineer.prompts import parse
from imagineer.service.jobs import AnimateJob, ExtendJob, ReelJob, VideoJobRequest
from imagineer.service.plan import check_supported
from imagineer.service.results import NotAnOutput

if TYPE_CHECKING:
    from imagineer.service.video import VideoMaker, VideoOptions, VideoResult

CLIP_SUFFIXES = (".mp4", ".webm", ".gif")


def check_video_job(maker: VideoMaker, request: VideoJobRequest, user: str) -> None:
    """Refuse now what the job would refuse when it runs: a prompt that does not parse or that
    the safety gate refuses (the image's recipe prompt when none is given), a source that is
    not an image (animate) or a clip (extend). Raises what the run would raise."""
    if isinstance(request, ReelJob):
        maker.reel_request(request.prompt, user)
        return
    if isinstance(request, AnimateJob):
        _check_image(Path(request.path))
        if request.end is not None:
            _check_image(Path(request.end))
    elif Path(request.path).suffix.lower() not in CLIP_SUFFIXES:
        raise NotAnOutput(f"{Path(request.path).name} is not a clip: extend takes MP4, WebM or GIF")
    if request.prompt is not None:
        _check_clip_prompt(maker, request.prompt, user)
        return
    recipe = read_recipe(Path(request.path))
    if recipe is None:
        raise NotAnOutput(
            f"{Path(request.path).name} has no imagineer recipe: give a prompt to {request.kind} it"
        )
    maker.service.check_prompt(recipe.prompt, user)


def perform_video(
    maker: VideoMaker, request: VideoJobRequest, options: VideoOptions
) -> VideoResult:
    """Run a video job's request now, in this process."""
    if isinstance(request, AnimateJob):
        return maker.animate(
            Path(request.path),
            prompt=request.prompt,
            motion=request.motion,
            loop=request.loop,
            end=None if request.end is None else Path(request.end),
            seconds=request.seconds,
            options=options,
        )
    if isinstance(request, ExtendJob):
        return maker.extend(
            Path(request.path),
            seconds=request.seconds,
            prompt=request.prompt,
            motion=request.motion,
            options=options,
        )
    return maker.reel(request.prompt, seconds=request.seconds, options=options)


def _check_clip_prompt(maker: VideoMaker, prompt: str, user: str) -> None:
    """A prompt given to animate or extend: safe, and one request a clip can take."""
    maker.service.check_prompt(prompt, user)
    check_supported(parse(prompt), video_ok=True)  # the run parses it so: one prompt


def _check_image(path: Path) -> None:
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise NotAnOutput(f"{path.name} is not an image to animate") from None
