"""Typed job requests: what a queued job asks for, as the JSON payload the job store keeps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeAlias

Strength: TypeAlias = Literal["subtle", "strong"]
STRENGTHS: Final[dict[str, float]] = {"subtle": 0.35, "strong": 0.7}  # image-to-image strength
UPSCALE_FACTORS: Final = (2, 4)
Motion: TypeAlias = Literal["low", "high"]
MOTIONS: Final = ("low", "high")
VIDEO_FORMATS: Final = ("mp4", "webm", "gif")
CLIP_SECONDS: Final = (0.5, 20.0)  # what one clip or one extend may last
REEL_SECONDS: Final = (1.0, 60.0)  # what a reel may last


def _check_optional_text(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: must be a string or null")


def _check_steps(steps: object) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps={steps!r}: use a whole number of at least 1, or null")


def _check_path(path: object) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(f"path={path!r}: must be the path of an image file")


@dataclass(frozen=True)
class PinnedStyle:
    """A --sref reference as resolved when its job was queued: the worker reads this file, and
    only while its sha256 is still this one (a queued job never reads another image)."""

    ref: str  # as the prompt writes it: `style.png`, `upload:ID`, `job:ID/2`
    path: str  # the absolute path it named when queued
    sha256: str  # the file's content hash then

    def __post_init__(self) -> None:
        for name in ("ref", "path", "sha256"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"sref {name}={getattr(self, name)!r}: must be non-empty text")
        if not Path(self.path).is_absolute():
            raise ValueError(f"sref path={self.path!r}: must be absolute")
        if len(self.sha256) != 64 or not set(self.sha256) <= set("0123456789abcdef"):
            raise ValueError(f"sref sha256={self.sha256!r}: must be 64 hex digits")


def _pinned_styles(value: object) -> tuple[PinnedStyle, ...] | None:
    """A job's pinned --sref references from Python values or its JSON payload."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"sref={value!r}: must be a list of pinned references, or null")
    pinned = []
    for item in value:
        if isinstance(item, Mapping):
            unknown = set(item) - {"ref", "path", "sha256"}
            if unknown:
                raise ValueError(f"sref item has unknown keys: {', '.join(sorted(unknown))}")
            item = PinnedStyle(**item)
        if not isinstance(item, PinnedStyle):
            raise ValueError(f"sref item {item!r}: must be a pinned reference")
        pinned.append(item)
    return tuple(pinned)


def check_strength(strength: object) -> float:
    """The image-to-image strength of a --strong/--subtle choice."""
    if strength not in STRENGTHS:
        raise ValueError(f"strength={strength!r}: use one of {', '.join(STRENGTHS)}")
    return STRENGTHS[str(strength)]


def check_factor(factor: object) -> int:
    if isinstance(factor, bool) or factor not in UPSCALE_FACTORS:
        raise ValueError(f"factor={factor!r}: use one of {', '.join(map(str, UPSCALE_FACTORS))}")
    return int(factor)


@dataclass(frozen=True)
class ImagineJob:
    """Make a 2x2 grid per request of a prompt."""

    kind: ClassVar[str] = "imagine"
    prompt: str
    out_dir: str | None = None  # None: Settings.output_dir of the worker
    steps: int | None = None  # None: from --q and --draft
    sref: tuple[PinnedStyle, ...] | None = None  # --sref files as queued; None: read them now

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt={self.prompt!r}: must be non-empty prompt text")
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)
        object.__setattr__(self, "sref", _pinned_styles(self.sref))


@dataclass(frozen=True)
class VaryJob:
    """Make a 2x2 grid of variations of one image."""

    kind: ClassVar[str] = "vary"
    path: str
    strength: Strength = "subtle"
    prompt: str | None = None  # None: the image's own recipe prompt
    out_dir: str | None = None
    steps: int | None = None
    sref: tuple[PinnedStyle, ...] | None = None  # --sref files as queued; None: read them now

    def __post_init__(self) -> None:
        _check_path(self.path)
        check_strength(self.strength)
        _check_optional_text("prompt", self.prompt)
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)
        object.__setattr__(self, "sref", _pinned_styles(self.sref))


@dataclass(frozen=True)
class UpscaleJob:
    """Upscale one image 2x or 4x."""

    kind: ClassVar[str] = "upscale"
    path: str
    factor: int = 2
    out_dir: str | None = None

    def __post_init__(self) -> None:
        _check_path(self.path)
        check_factor(self.factor)
        _check_optional_text("out_dir", self.out_dir)


@dataclass(frozen=True)
class RemixJob:
    """Re-render one image from its recipe, optionally with a new prompt."""

    kind: ClassVar[str] = "remix"
    path: str
    prompt: str | None = None  # None: exactly the recipe
    out_dir: str | None = None
    steps: int | None = None
    sref: tuple[PinnedStyle, ...] | None = None  # --sref files as queued; None: read them now

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_optional_text("prompt", self.prompt)
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)
        object.__setattr__(self, "sref", _pinned_styles(self.sref))


def _check_seconds(seconds: object, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"seconds={seconds!r}: use a number of seconds")
    if not low <= seconds <= high:
        raise ValueError(f"seconds={seconds!r}: use {low:g} to {high:g} seconds")


def _check_motion(motion: object, *, optional: bool = False) -> None:
    if motion is None and optional:
        return
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r}: use one of {', '.join(MOTIONS)}")


def _check_formats(formats: object) -> tuple[str, ...]:
    if isinstance(formats, str) or not isinstance(formats, list | tuple) or not formats:
        raise ValueError(f"formats={formats!r}: give a list of {', '.join(VIDEO_FORMATS)}")
    for name in formats:
        if name not in VIDEO_FORMATS:
            raise ValueError(f"video format {name!r}: use {', '.join(VIDEO_FORMATS)}")
    return tuple(dict.fromkeys(formats))


@dataclass(frozen=True)
class AnimateJob:
    """Animate one image into a clip that starts on it (`imagineer animate`)."""

    kind: ClassVar[str] = "animate"
    path: str
    prompt: str | None = None  # None: the image's own recipe prompt
    motion: Motion = "low"
    loop: bool = False
    end: str | None = None  # an image to end on
    seconds: float = 5.0
    formats: tuple[str, ...] = ("mp4",)  # MP4 first: it carries the C2PA manifest
    out_dir: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_optional_text("prompt", self.prompt)
        _check_motion(self.motion)
        if not isinstance(self.loop, bool):
            raise ValueError(f"loop={self.loop!r}: must be true or false")
        _check_optional_text("end", self.end)
        if self.loop and self.end is not None:
            raise ValueError("loop and end conflict: a loop ends on its own first frame")
        _check_seconds(self.seconds, CLIP_SECONDS)
        object.__setattr__(self, "formats", _check_formats(self.formats))
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


@dataclass(frozen=True)
class ExtendJob:
    """Make a clip longer: a new clip continues from its last frame (`imagineer extend`)."""

    kind: ClassVar[str] = "extend"
    path: str  # the clip
    seconds: float = 4.0  # how much longer
    prompt: str | None = None  # None: the clip's recipe prompt
    motion: Motion | None = None  # None: the clip's
    formats: tuple[str, ...] = ("mp4",)
    out_dir: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_seconds(self.seconds, CLIP_SECONDS)
        _check_optional_text("prompt", self.prompt)
        _check_motion(self.motion, optional=True)
        object.__setattr__(self, "formats", _check_formats(self.formats))
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


@dataclass(frozen=True)
class ReelJob:
    """A finished reel from one prompt: storyboard, shots, cuts, 24 fps (`imagineer reel`)."""

    kind: ClassVar[str] = "reel"
    prompt: str
    seconds: float = 10.0
    formats: tuple[str, ...] = ("mp4",)
    out_dir: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt={self.prompt!r}: must be non-empty prompt text")
        _check_seconds(self.seconds, REEL_SECONDS)
        object.__setattr__(self, "formats", _check_formats(self.formats))
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


ImageJobRequest: TypeAlias = ImagineJob | VaryJob | UpscaleJob | RemixJob
VideoJobRequest: TypeAlias = AnimateJob | ExtendJob | ReelJob
JobRequest: TypeAlias = ImageJobRequest | VideoJobRequest
JOB_TYPES: Final[dict[str, type[JobRequest]]] = {
    cls.kind: cls
    for cls in (ImagineJob, VaryJob, UpscaleJob, RemixJob, AnimateJob, ExtendJob, ReelJob)
}
VIDEO_KINDS: Final = frozenset({AnimateJob.kind, ExtendJob.kind, ReelJob.kind})


def to_payload(request: JobRequest) -> dict[str, Any]:
    """The JSON payload a job of this request stores."""
    return dataclasses.asdict(request)


def from_payload(kind: str, payload: Mapping[str, Any]) -> JobRequest:
    """The typed request of a stored job; unknown kinds and keys are refused."""
    cls = JOB_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"job kind {kind!r}: this worker runs {', '.join(JOB_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(payload) - names
    if unknown:
        raise ValueError(f"{kind} job payload has unknown keys: {', '.join(sorted(unknown))}")
    return cls(**payload)


def with_absolute_paths(request: JobRequest) -> JobRequest:
    """The request with its file and folder made absolute (a worker may run elsewhere)."""
    changes: dict[str, str] = {}
    if isinstance(request, VaryJob | UpscaleJob | RemixJob | AnimateJob | ExtendJob):
        changes["path"] = _absolute_file(request.path)
    if isinstance(request, AnimateJob) and request.end is not None:
        changes["end"] = _absolute_file(request.end)
    if request.out_dir is not None:
        changes["out_dir"] = str(Path(request.out_dir).expanduser().resolve())
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


def _absolute_file(name: str) -> str:
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {name}")
    return str(path.resolve())
