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


def _check_optional_text(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: must be a string or null")


def _check_steps(steps: object) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps={steps!r}: use a whole number of at least 1, or null")


def _check_path(path: object) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(f"path={path!r}: must be the path of an image file")


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

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt={self.prompt!r}: must be non-empty prompt text")
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


@dataclass(frozen=True)
class VaryJob:
    """Make a 2x2 grid of variations of one image."""

    kind: ClassVar[str] = "vary"
    path: str
    strength: Strength = "subtle"
    prompt: str | None = None  # None: the image's own recipe prompt
    out_dir: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        _check_path(self.path)
        check_strength(self.strength)
        _check_optional_text("prompt", self.prompt)
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


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

    def __post_init__(self) -> None:
        _check_path(self.path)
        _check_optional_text("prompt", self.prompt)
        _check_optional_text("out_dir", self.out_dir)
        _check_steps(self.steps)


JobRequest: TypeAlias = ImagineJob | VaryJob | UpscaleJob | RemixJob
JOB_TYPES: Final[dict[str, type[JobRequest]]] = {
    cls.kind: cls for cls in (ImagineJob, VaryJob, UpscaleJob, RemixJob)
}


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
    if isinstance(request, VaryJob | UpscaleJob | RemixJob):
        path = Path(request.path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {request.path}")
        changes["path"] = str(path.resolve())
    if request.out_dir is not None:
        changes["out_dir"] = str(Path(request.out_dir).expanduser().resolve())
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]
