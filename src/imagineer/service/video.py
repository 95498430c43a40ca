"""The video features of the service layer: clips from text or an image, extend, and reels.

Each call plans engine inputs, runs them on whatever engine the router picks for text-to-video
or image-to-video (the zero-shot engine by default, a trained video model when one is
installed), and writes the clip with its recipe and marks: every frame watermarked, the MP4
and GIF signed with a C2PA manifest (WebM cannot hold one), a poster and a contact sheet.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from PIL import Image

from imagineer.engines.base import (
    Cancelled,
    Capability,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.media.images import array_to_image, image_to_array, read_recipe
from imagineer.media.video import SUPPORTED_VIDEO_FORMATS, read_video, write_video
from imagineer.prompts import Request, format_request, parse_all
from imagineer.provenance.label import MarkedClip, mark_clip, seal_video
from imagineer.provenance.recipe import Kind, Recipe, content_hash
from imagineer.router import Route
from imagineer.safety import Decision
from imagineer.service.outputs import (
    Marking,
    output_stem,
    unique_path,
    write_output,
)
from imagineer.service.plan import (
    UnsupportedRequest,
    check_steps,
    check_supported,
    input_for,
    native_size,
)
from imagineer.service.previews import PreviewFn
from imagineer.service.render import OUTPUT_REFUSED, CancelFn, ProgressFn, Source
from imagineer.service.results import NotAnOutput, OutputImage, SafetyRefusal, Timings
from imagineer.video.camera import CAMERA_MOVES, CameraPath
from imagineer.video.frames import FramePlan, plan_frames
from imagineer.video.reel import contact_sheet, poster_index, stitch
from imagineer.video.storyboard import Storyboard, build_storyboard

if TYPE_CHECKING:
    from imagineer.service.core import Service

FPS: Final = 24
CLIP_SECONDS: Final = 5.0  # a clip, as Midjourney animates one
EXTEND_SECONDS: Final = 4.0  # what one extend adds
MAX_CLIP_SECONDS: Final = 20.0
SHEET_EVERY_SECONDS: Final = 0.5  # a clip's contact sheet shows a frame every half second
_PROGRESS_SCALE: Final = 1000
_VIDEO_FLAG: Final = re.compile(r"(?:^|\s)--video(?:\s|$)")


@dataclass(frozen=True)
class OutputVideo:
    """One clip file written, with its recipe and marks."""

    path: Path
    recipe: Recipe
    format: str  # "mp4", "webm" or "gif"
    frame_count: int
    fps: int
    watermarked: bool
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "frame_count": self.frame_count,
            "fps": self.fps,
            "watermarked": self.watermarked,
            "signed": self.signed,
            "recipe": self.recipe.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputVideo:
        return cls(
            path=Path(data["path"]),
            recipe=Recipe.from_dict(data["recipe"]),
            format=str(data["format"]),
            frame_count=int(data["frame_count"]),
            fps=int(data["fps"]),
            watermarked=bool(data["watermarked"]),
            signed=bool(data["signed"]),
        )


@dataclass(frozen=True)
class VideoResult:
    """The outcome of a clip, an extend or a reel."""

    kind: Kind
    videos: tuple[OutputVideo, ...]  # the same clip in each format asked for, MP4 first
    poster: OutputImage
    contact_sheet: OutputImage
    seed: int
    engine: str
    model_id: str
    route_reason: str
    timings: Timings
    storyboard: Storyboard | None = None
    warnings: tuple[str, ...] = ()
    frames: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)  # as encoded

    @property
    def path(self) -> Path:
        return self.videos[0].path

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "videos": [v.to_dict() for v in self.videos],
            "poster": self.poster.to_dict(),
            "contact_sheet": self.contact_sheet.to_dict(),
            "seed": self.seed,
            "engine": self.engine,
            "model_id": self.model_id,
            "route_reason": self.route_reason,
            "timings": self.timings.to_dict(),
            "storyboard": None if self.storyboard is None else self.storyboard.to_json(),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoResult:
        """Rebuild a result from `to_dict()` output (a finished job's result). The frames are
        not kept, nor the storyboard object: a reel's recipes carry it in their extras."""
        kind = data["kind"]
        if kind not in ("imagine", "animate", "reel"):
            raise ValueError(f"kind={kind!r}: a video result is imagine, animate or reel")
        t = data["timings"]
        return cls(
            kind=kind,
            videos=tuple(OutputVideo.from_dict(item) for item in data["videos"]),
            poster=OutputImage.from_dict(data["poster"]),
            contact_sheet=OutputImage.from_dict(data["contact_sheet"]),
            seed=int(data["seed"]),
            engine=str(data["engine"]),
            model_id=str(data["model_id"]),
            route_reason=str(data["route_reason"]),
            timings=Timings(float(t["route_s"]), float(t["generate_s"]), float(t["save_s"])),
            warnings=tuple(str(w) for w in data["warnings"]),
        )


@dataclass(frozen=True)
class VideoOptions:
    """What every video call shares: formats, where files go, who asks, how to follow it."""

    formats: tuple[str, ...] = ("mp4",)
    out_dir: Path | None = None
    user: str = "local"
    steps: int | None = None  # keyframe steps (overrides --q and --draft)
    on_progress: ProgressFn | None = None  # (done, all) in thousandths of the whole call
    should_cancel: CancelFn | None = None
    on_preview: PreviewFn | None = None  # a frame of the clip so far, where one is at hand

    def __post_init__(self) -> None:
        if not self.formats:
            raise ValueError("formats is empty: ask for at least one of mp4, webm, gif")
        for name in self.formats:
            if name not in SUPPORTED_VIDEO_FORMATS:
                raise ValueError(f"video format {name!r}: use {', '.join(SUPPORTED_VIDEO_FORMATS)}")
        check_steps(self.steps)


@dataclass(frozen=True)
class _Made:
    """Frames made by one engine route, and what the recipe needs to say about them."""

    frames: list[np.ndarray]
    route: Route
    item: GenerationInput
    request: Request | None
    prompt: str
    extras: dict[str, str | int | float | bool]
    source: Source | None = None
    notes: tuple[str, ...] = ()  # why the engine calls differ from the clip asked for


@dataclass(frozen=True)
class _Rendered:
    """The frames of each item, when generating began, and what the frame plans changed."""

    clips: list[list[np.ndarray]]
    began: float
    notes: tuple[str, ...]


class VideoMaker:
    """The video features over one Service (its runtime, safety gate, router and marks)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # --- features ------------------------------------------------------------------------------

    def imagine_video(
        self, prompt_text: str, *, seconds: float = CLIP_SECONDS, options: VideoOptions
    ) -> VideoResult:
        """A clip from a prompt with --video: a keyframe from the text, then animated."""
        started = time.perf_counter()
        request = self._one_request(prompt_text, options.user, "a clip")
        if not request.params.video:
            raise UnsupportedRequest("add --video to the prompt to make a clip")
        _check_seconds(seconds)
        route = self._video_route(Capability.TEXT_TO_VIDEO, request.params.model, fallback=False)
        seed = self._seed(request)
        item = input_for(
            request, route.engine.info, seed=seed, steps=options.steps,
            capability=Capability.TEXT_TO_VIDEO,
        )  # fmt: skip
        end = _load_end(request.params.end)
        item = _video_input(item, seconds, request.params.motion, request.params.loop, end)
        run = self._run([(route, item)], options)
        text = format_request(request)
        made = _Made(run.clips[0], route, item, request, text, {}, notes=run.notes)
        return self._write("imagine", made, options, (started, run.began))

    def animate(
        self,
        path: Path,
        *,
        prompt: str | None = None,
        motion: str = "low",
        loop: bool = False,
        end: Path | None = None,
        camera: str | None = None,
        seconds: float = CLIP_SECONDS,
        options: VideoOptions,
    ) -> VideoResult:
        """A clip that starts on the image at `path` (its first frame keeps the image)."""
        started = time.perf_counter()
        _check_seconds(seconds)
        if loop and end is not None:
            raise ValueError("--loop and --end conflict: a loop ends on its own first frame")
        source = self.service._source(Path(path), "animate")
        request = self.service._request_for(source, prompt, options.user, "animate")
        model = source.recipe.engine if source.recipe else None
        route = self._video_route(Capability.IMAGE_TO_VIDEO, model)
        image = _load_rgb(source.path)
        width, height = native_size((image.shape[1], image.shape[0]), route.engine.info)
        item = input_for(
            request.with_params(seed=None), route.engine.info,
            seed=source.recipe.seed if source.recipe else self._seed(request),
            steps=options.steps, capability=Capability.IMAGE_TO_VIDEO,
        )  # fmt: skip
        item = dataclasses.replace(item, width=width, height=height, init_image=image)
        end_image = _load_rgb(Path(end)) if end is not None else None
        item = _video_input(item, seconds, motion, loop, end_image, _camera(camera, motion, loop))
        run = self._run([(route, item)], options)
        text = format_request(request)
        made = _Made(run.clips[0], route, item, request, text, {}, source, run.notes)
        return self._write("animate", made, options, (started, run.began))

    def extend(
        self,
        path: Path,
        *,
        seconds: float = EXTEND_SECONDS,
        prompt: str | None = None,
        motion: str | None = None,
        options: VideoOptions,
    ) -> VideoResult:
        """The clip at `path` and `seconds` more: a new clip continues from its last frame."""
        started = time.perf_counter()
        _check_seconds(seconds)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        try:
            clip = read_video(path)
        except ValueError as err:
            raise NotAnOutput(f"{path.name} is not a clip to extend: {err}") from None
        recipe = read_recipe(path)
        source = Source(path, recipe, content_hash(path.read_bytes()))
        request = self.service._request_for(source, prompt, options.user, "extend")
        extras = recipe.extras if recipe else {}
        motion = motion or str(extras.get("motion", "low"))
        camera = _continued_camera(extras, motion)
        route = self._video_route(Capability.IMAGE_TO_VIDEO, recipe.engine if recipe else None)
        last = clip.frames[-1]
        item = input_for(
            request.with_params(seed=None), route.engine.info,
            seed=recipe.seed if recipe else self._seed(request),
            steps=options.steps, capability=Capability.IMAGE_TO_VIDEO,
        )  # fmt: skip
        item = dataclasses.replace(item, width=last.shape[1], height=last.shape[0], init_image=last)
        # one frame more than asked: the new clip's first frame is the old clip's last
        item = _video_input(item, seconds + 1 / FPS, motion, False, None, camera)
        run = self._run([(route, item)], options)
        frames = [*clip.frames, *run.clips[0][1:]]
        made = _Made(
            frames, route, item, request, format_request(request),
            {"extends": source.digest, "extended_s": seconds}, source, run.notes,
        )  # fmt: skip
        return self._write("animate", made, options, (started, run.began))

    def reel(
        self, prompt_text: str, *, seconds: float = 10.0, options: VideoOptions
    ) -> VideoResult:
        """A finished reel: a storyboard of shots, each a clip, stitched at 24 fps."""
        started = time.perf_counter()
        request = self.reel_request(prompt_text, options.user)
        p = request.params
        route = self._video_route(Capability.TEXT_TO_VIDEO, p.model, fallback=False)
        seed = self._seed(request)
        base = input_for(
            request, route.engine.info, seed=seed, steps=options.steps,
            capability=Capability.TEXT_TO_VIDEO,
        )  # fmt: skip
        board = build_storyboard(
            request.positive_text,
            seconds=seconds,
            fps=FPS,
            motion=p.motion,
            aspect=base.width / base.height,
        )
        items = []
        for shot in board.shots:
            same_text = shot.line == request.positive_text
            item = dataclasses.replace(
                base,
                prompt=shot.line,
                weighted_prompts=base.weighted_prompts if same_text else (),
                seed=seed + shot.seed_offset,
            )
            items.append(
                (route, _video_input(item, shot.frames / FPS, p.motion, camera=shot.camera))
            )
        run = self._run(items, options)
        frames = stitch(run.clips, board)
        extras: dict[str, str | int | float | bool] = {
            "storyboard": board.to_json(),
            "shots": len(board.shots),
        }
        text = format_request(request)
        made = _Made(frames, route, items[0][1], request, text, extras, notes=run.notes)
        return self._write("reel", made, options, (started, run.began), board=board)

    def reel_request(self, prompt_text: str, user: str) -> Request:
        """The one request of a reel's prompt, checked (safety first, then the language)."""
        request = self._one_request(prompt_text, user, "a reel", implies_video=True)
        if request.params.loop or request.params.end is not None:
            raise UnsupportedRequest(
                "--loop and --end shape one clip: use them with `imagineer animate`, not a reel"
            )
        return request

    def source_image(self, ref: str | Path, *, index: int = 0, user: str | None = None) -> Path:
        """The image to animate: a file, or image `index` of a finished job's result."""
        path = Path(ref)
        if path.is_file():
            return path
        from imagineer.jobs import JobError

        try:
            job = self.service.job(str(ref), user=user)
        except JobError:
            raise FileNotFoundError(f"{ref}: no such file, and no job with that id") from None
        if job.result is None or not job.result.get("images"):
            raise NotAnOutput(f"job {job.id} is {job.state.value} and has no images to animate")
        images = job.result["images"]
        if not 0 <= index < len(images):
            raise ValueError(f"--index {index}: job {job.id} has images 0 to {len(images) - 1}")
        return Path(images[index]["path"])

    # --- shared steps --------------------------------------------------------------------------

    def _one_request(
        self, prompt_text: str, user: str, what: str, *, implies_video: bool = False
    ) -> Request:
        """The single request of `prompt_text`. `implies_video`: a reel is a video, so its
        video flags (--motion) need no --video; one is added at the end, where no error
        position can move."""
        self.service.check_prompt(prompt_text, user)
        if implies_video and not _VIDEO_FLAG.search(prompt_text):
            prompt_text = f"{prompt_text} --video"
        requests = parse_all(prompt_text)
        if len(requests) != 1:
            raise UnsupportedRequest(
                f"{{a, b}} permutations make {len(requests)} prompts; {what} takes one"
            )
        check_supported(requests[0], video_ok=True)
        return requests[0]

    def _seed(self, request: Request) -> int:
        given = request.params.seed
        return given if given is not None else self.service._seed_source()

    def _video_route(
        self, capability: Capability, model: str | None, *, fallback: bool = True
    ) -> Route:
        """The engine for a clip: the model asked for (the embedded model animates through
        embedded-video); for a derived clip (fallback) any engine that can, if it cannot."""
        from imagineer.runtime import EMBEDDED, EMBEDDED_VIDEO

        if model == EMBEDDED:
            model = EMBEDDED_VIDEO
        return self.service.route(capability, model=model, allow_fallback=fallback)

    def _run(
        self,
        items: Sequence[tuple[Route, GenerationInput]],
        options: VideoOptions,
    ) -> _Rendered:
        """Each item's frames, in order, at the frame count asked for, made in the engine
        calls its advertised frame counts allow (imagineer.video.frames); and when the
        generating began (after checks, routing and loading)."""
        began = time.perf_counter()
        plans = [_frame_plan(route, item) for route, item in items]
        calls = sum(len(plan.segments) for plan in plans)
        clips: list[list[np.ndarray]] = []
        done = 0
        for (route, item), plan in zip(items, plans, strict=True):
            if item.init_image is not None:  # the clip starts on it: a preview for free
                _preview(options, done, calls, item.init_image)
            frames = self._segments(route, item, plan, options, (done, calls))
            done += len(plan.segments)
            clips.append(retime(frames, item.num_frames))
            _preview(options, done, calls, clips[-1][len(clips[-1]) // 2])
        notes = tuple(dict.fromkeys(plan.reason for plan in plans if plan.reason))
        return _Rendered(clips, began, notes)

    def _segments(
        self,
        route: Route,
        item: GenerationInput,
        plan: FramePlan,
        options: VideoOptions,
        share: tuple[int, int],
    ) -> list[np.ndarray]:
        """One item's frames from the engine calls of its plan: each call after the first
        starts on the last frame of the one before (and repeats it, so it is dropped)."""
        frames: list[np.ndarray] = []
        for k, count in enumerate(plan.segments):
            if options.should_cancel is not None and options.should_cancel():
                raise Cancelled("cancelled before the clip was made")
            part = _segment_input(item, count, k, len(plan.segments), frames)
            control = RunControl(
                on_progress=_share(options.on_progress, share[0] + k, share[1]),
                should_cancel=options.should_cancel,
            )
            out: GenerationOutput = route.engine.generate([part], control)[0]
            made = retime(list(out.frames), count)
            frames += made if k == 0 else made[1:]
        return frames

    def _write(
        self,
        kind: Kind,
        made: _Made,
        options: VideoOptions,
        clock: tuple[float, float],
        *,
        board: Storyboard | None = None,
    ) -> VideoResult:
        """Check, mark and write the clip in every format, then its poster and contact sheet.

        `clock`: when the call started and when generating began (the rest was checks,
        routing and loading the engine)."""
        generated = time.perf_counter()
        if options.on_progress is not None:
            options.on_progress(_PROGRESS_SCALE, _PROGRESS_SCALE)
        frames = made.frames
        self._check_output(frames, options.user, made.prompt)
        recipe = _recipe(kind, made, len(frames))
        marking = self.service.renderer.marking()
        folder = (
            options.out_dir
            if options.out_dir is not None
            else self.service.runtime.settings.output_dir
        )
        folder.mkdir(parents=True, exist_ok=True)
        stem = output_stem(kind, made.item.prompt, made.item.seed)
        clip = mark_clip(
            frames, recipe.to_json(), watermark=marking.watermark, marker=marking.marker
        )
        frames = clip.frames
        videos, warnings = [], list(made.notes)
        for name in dict.fromkeys(options.formats):
            video = _write_video(frames, folder, stem, name, recipe, marking, made.source, clip)
            videos.append(video)
            if name == "webm" and marking.identity is not None:
                warnings.append("WebM cannot hold a C2PA manifest: the .webm is watermarked only")
        at = poster_index(board) if board is not None else 0
        poster = self._still(frames[at], folder, f"{stem}_poster", recipe, "poster", marking, made)
        sheet_image = (
            contact_sheet(frames, board)
            if board is not None
            else clip_sheet(frames, every=max(1, round(SHEET_EVERY_SECONDS * FPS)))
        )
        sheet = self._still(
            sheet_image, folder, f"{stem}_sheet", recipe, "contact_sheet", marking, made
        )
        info = made.route.engine.info
        return VideoResult(
            kind=kind,
            videos=tuple(videos),
            poster=poster,
            contact_sheet=sheet,
            seed=made.item.seed,
            engine=made.route.name,
            model_id=info.model_id,
            route_reason=made.route.reason,
            timings=Timings(
                clock[1] - clock[0], generated - clock[1], time.perf_counter() - generated
            ),
            storyboard=board,
            warnings=tuple(warnings),
            frames=tuple(frames),
        )

    def _still(
        self,
        picture: np.ndarray | Image.Image,
        folder: Path,
        name: str,
        recipe: Recipe,
        role: str,
        marking: Marking,
        made: _Made,
    ) -> OutputImage:
        image = picture if isinstance(picture, Image.Image) else array_to_image(picture)
        still = dataclasses.replace(
            recipe, width=image.width, height=image.height, extras={**recipe.extras, "role": role}
        )
        path = unique_path(folder, name)
        source = made.source
        if source is None:
            written = write_output(image, path, still, marking)
        else:
            written = write_output(
                image, path, still, marking, action="edited", parents=[source.path],
                mixes_user_media=source.user_media,
            )  # fmt: skip
        return OutputImage(written.path, still, written.watermarked, written.signed)

    def _check_output(self, frames: Sequence[np.ndarray], user: str, prompt: str) -> None:
        """The output check (when on) looks at a few frames spread over the clip."""
        checker = self.service.runtime.output_checker
        if checker is None:
            return
        for i in np.linspace(0, len(frames) - 1, 4).round().astype(int):
            decision = checker.check(array_to_image(frames[i]))
            if not decision.allowed:
                self.service.runtime.store.record_refusal(
                    user_id=user,
                    category=decision.category or OUTPUT_REFUSED,
                    normalized_prompt=prompt,
                    message=decision.reason,
                )
                raise SafetyRefusal(Decision(False, OUTPUT_REFUSED, decision.reason, (), ""))


# --- helpers --------------------------------------------------------------------------------------


def retime(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """`frames` resampled to `count` frames by blending neighbours (an engine that makes clips
    at its own length and rate still fills the time asked for)."""
    if len(frames) == count:
        return frames
    if not frames:
        raise ValueError("the engine returned no frames")
    if len(frames) == 1:
        return frames * count
    out = []
    for i in range(count):
        pos = i * (len(frames) - 1) / max(1, count - 1)
        j = min(int(pos), len(frames) - 2)
        a = pos - j
        mixed = (1 - a) * frames[j].astype(np.float32) + a * frames[j + 1].astype(np.float32)
        out.append(np.clip(np.round(mixed), 0, 255).astype(np.uint8))
    return out


def clip_sheet(frames: Sequence[np.ndarray], *, every: int, cols: int = 5) -> Image.Image:
    """A clip's contact sheet: every `every`-th frame, and always the last."""
    from imagineer.media.images import make_grid

    picked = list(range(0, len(frames), every))
    if picked[-1] != len(frames) - 1:
        picked.append(len(frames) - 1)
    return make_grid([array_to_image(frames[i]) for i in picked], cols=cols, gap=2)


def _write_video(
    frames: Sequence[np.ndarray],
    folder: Path,
    stem: str,
    fmt: str,
    recipe: Recipe,
    marking: Marking,
    source: Source | None,
    clip: MarkedClip,
) -> OutputVideo:
    """One format of the clip: encoded with the recipe, then XMP and a signature where the
    format has room for them (provenance.label)."""
    path = write_video(frames, unique_path(folder, stem, f".{fmt}"), fps=FPS, recipe=recipe)
    sealed = seal_video(
        path,
        recipe,
        identity=marking.identity,
        watermarked=clip.watermarked,
        watermark_note=clip.reason,
        action="created" if source is None else "edited",
        parents=[] if source is None else [source.path],
        mixes_user_media=source is not None and source.user_media,
    )
    return OutputVideo(path, recipe, fmt, len(frames), FPS, clip.watermarked, sealed.signed)


def _recipe(kind: Kind, made: _Made, frame_count: int) -> Recipe:
    item, info = made.item, made.route.engine.info
    extras: dict[str, str | int | float | bool] = {
        "capability": item.capability.value,
        "frames": frame_count,
        "fps": FPS,
        "seconds": round(frame_count / FPS, 3),
        "motion": item.motion,
        "loop": item.loop,
        "end": item.end_image is not None,
        "route": made.route.reason,
    }
    if item.camera is not None:
        extras["camera"] = item.camera.to_text()
    if made.notes:
        extras["frame_plan"] = "; ".join(made.notes)
    extras.update(made.extras)
    return Recipe(
        prompt=made.prompt,
        kind=kind,
        engine=made.route.name,
        model=info.model_id,
        model_hash=info.model_hash,
        seed=item.seed,
        steps=item.steps,
        guidance=item.guidance,
        width=made.frames[0].shape[1],
        height=made.frames[0].shape[0],
        request=made.request.to_dict() if made.request is not None else {},
        parent=made.source.digest if made.source is not None else None,
        negative_prompt=item.negative_prompt,
        positive_prompt=item.prompt,
        extras=extras,
    )


def _video_input(
    item: GenerationInput,
    seconds: float,
    motion: str,
    loop: bool = False,
    end: np.ndarray | None = None,
    camera: CameraPath | None = None,
) -> GenerationInput:
    capability = Capability.IMAGE_TO_VIDEO if item.init_image is not None else item.capability
    return dataclasses.replace(
        item,
        capability=capability,
        num_frames=max(2, round(seconds * FPS)),
        fps=FPS,
        motion=motion,
        loop=loop,
        end_image=end,
        camera=camera,
    )


def _frame_plan(route: Route, item: GenerationInput) -> FramePlan:
    """The engine calls for one clip, by the frame counts its engine advertises."""
    info = route.engine.info
    return plan_frames(
        item.num_frames,
        info.frame_counts,
        engine=route.name,
        can_continue=Capability.IMAGE_TO_VIDEO in info.capabilities,
    )


def _segment_input(
    item: GenerationInput, count: int, k: int, calls: int, so_far: Sequence[np.ndarray]
) -> GenerationInput:
    """Call k of `calls` making `item`: later calls start on the last frame made so far, and
    only the last call ends where the clip ends (--end, or its first frame for --loop)."""
    part = dataclasses.replace(item, num_frames=count)
    if calls == 1:
        return part
    if k > 0:
        part = dataclasses.replace(
            part,
            capability=Capability.IMAGE_TO_VIDEO,
            init_image=so_far[-1],
            seed=item.seed + k,
        )
    if k < calls - 1:
        return dataclasses.replace(part, loop=False, end_image=None)
    if item.loop:
        return dataclasses.replace(part, loop=False, end_image=so_far[0])
    return part


def _preview(options: VideoOptions, done: int, calls: int, frame: np.ndarray) -> None:
    if options.on_preview is not None:
        options.on_preview(done * _PROGRESS_SCALE // calls, _PROGRESS_SCALE, frame)


def _camera(name: str | None, motion: str, loop: bool) -> CameraPath | None:
    if name is None:
        return None
    if name not in CAMERA_MOVES:
        raise ValueError(f"camera {name!r}: use one of {', '.join(CAMERA_MOVES)}")
    return CameraPath(name, motion, loop=loop)


def _continued_camera(extras: dict[str, Any], motion: str) -> CameraPath | None:
    """The camera of the clip being extended, going on (from the new keyframe's whole view)."""
    text = extras.get("camera")
    if not isinstance(text, str):
        return None
    before = CameraPath.from_text(text)
    return CameraPath(before.move, motion)


def _check_seconds(seconds: float) -> None:
    if not (isinstance(seconds, int | float) and 0.5 <= seconds <= MAX_CLIP_SECONDS):
        raise ValueError(f"seconds={seconds!r}: a clip runs 0.5 to {MAX_CLIP_SECONDS:.0f} seconds")


def _load_rgb(path: Path) -> np.ndarray:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with Image.open(path) as image:
        image.seek(0)
        return image_to_array(image)


def _load_end(end: str | None) -> np.ndarray | None:
    """The --end image of a prompt: a local file (URLs are not fetched)."""
    if end is None:
        return None
    if "://" in end:
        raise UnsupportedRequest(f"--end {end}: give a local image file, not a URL")
    return _load_rgb(Path(end))


def _share(on_progress: ProgressFn | None, index: int, count: int) -> Any:
    """Progress of clip `index` of `count` as a share of the whole call (per mille)."""

    def report(step: int, total: int, _preview: np.ndarray | None = None) -> None:
        if on_progress is not None and total > 0:
            done = (index + min(step, total) / total) / count
            on_progress(math.floor(done * _PROGRESS_SCALE * 0.999), _PROGRESS_SCALE)

    return report
