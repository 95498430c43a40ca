"""The engine contract: capabilities, typed inputs and outputs, progress and cancellation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from imagineer.video.camera import CameraPath


class Capability(StrEnum):
    """What an engine can be asked to do."""

    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINT = "inpaint"
    UPSCALE = "upscale"
    TEXT_TO_VIDEO = "text-to-video"
    IMAGE_TO_VIDEO = "image-to-video"


class Cancelled(Exception):
    """Raised inside an engine when the caller asked it to stop; nothing is written."""


class EngineError(RuntimeError):
    """An engine could not run a request; the message says what to change."""


@dataclass(frozen=True)
class StyleReference:
    """One style reference image (--sref): engines take its look, not its content."""

    image: np.ndarray  # (H, W, 3) uint8, as read from the file
    digest: str  # sha256 hex of the file's bytes: what recipes record
    weight: float = 1.0  # its share among the references (`--sref a.png::2 b.png`)


@dataclass(frozen=True)
class GenerationInput:
    """One item of a batch, already mapped from the prompt language to engine terms."""

    capability: Capability
    prompt: str  # the positive text; engines without weighting use this
    negative_prompt: str = ""  # from --no and negative :: weights
    weighted_prompts: tuple[tuple[str, float], ...] = ()  # positive (text, weight) parts
    width: int = 256
    height: int = 256
    seed: int = 0  # each item gets its own torch.Generator seeded with this
    steps: int = 20
    guidance: float = 5.0  # classifier-free guidance scale (--stylize maps here)
    chaos: float = 0.0  # 0..1, --chaos/100: how far the items of one grid may differ
    weird: float = 0.0  # 0..1, --weird/3000: pushes away from the typical look
    tile: bool = False  # seamless tiling (circular padding)
    raw: bool = False  # --raw: no default style added to the prompt
    init_image: np.ndarray | None = None  # (H, W, 3) uint8 for image-to-image, upscale, animate
    strength: float = 0.6  # image-to-image: how much of the init image is replaced
    mask: np.ndarray | None = None  # (H, W) bool for inpaint: True where pixels are regenerated
    scale: int = 2  # upscale factor
    num_frames: int = 1  # video engines
    fps: int = 24
    motion: str = "low"  # "low" | "high"
    end_image: np.ndarray | None = None  # video: last frame to reach (--end)
    loop: bool = False  # video: last frame returns to the first
    camera: CameraPath | None = None  # video: the camera's path (None: the engine chooses)
    style_refs: tuple[StyleReference, ...] = ()  # --sref images
    style_weight: float = 1.0  # --sw / 100: 0 turns the references off, 10 at most

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"size {self.width}x{self.height} must be positive")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}: use at least 1")
        if not 0.0 <= self.chaos <= 1.0:
            raise ValueError(f"chaos={self.chaos}: use 0..1")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength={self.strength}: use 0..1")
        if self.style_weight < 0 or any(ref.weight <= 0 for ref in self.style_refs):
            raise ValueError("style references take positive weights and style_weight >= 0")

    def batch_key(self) -> tuple[object, ...]:
        """Items with equal keys can share one batched forward pass."""
        return (self.capability, self.width, self.height, self.steps, self.num_frames, self.tile)


@dataclass(frozen=True)
class GenerationOutput:
    """What one batch item produced: one image, or the frames of one clip."""

    frames: tuple[np.ndarray, ...]  # each (H, W, 3) uint8; one entry for an image
    seed: int
    steps: int
    guidance: float
    extras: tuple[tuple[str, str | int | float | bool], ...] = ()

    @property
    def image(self) -> np.ndarray:
        return self.frames[0]


ProgressFn = Callable[[int, int, "np.ndarray | None"], None]


@dataclass(frozen=True)
class RunControl:
    """Callbacks an engine calls between steps: report progress, stop when asked."""

    on_progress: ProgressFn | None = None
    should_cancel: Callable[[], bool] | None = None
    preview_every: int = 0  # 0: no previews; n: pass a preview image every n steps

    def step(self, step: int, total: int, preview: np.ndarray | None = None) -> None:
        """Report a finished step, then raise Cancelled if the caller asked to stop."""
        if self.on_progress is not None:
            self.on_progress(step, total, preview)
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled(f"cancelled after step {step} of {total}")

    def wants_preview(self, step: int) -> bool:
        return self.preview_every > 0 and step % self.preview_every == 0


@dataclass(frozen=True)
class FrameCounts:
    """The clip lengths a video engine renders in one call: multiple*k + offset frames, from
    minimum up to maximum (None: no fixed limit)."""

    multiple: int = 1
    offset: int = 0
    minimum: int = 2
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.multiple < 1 or self.offset < 0 or self.minimum < 1:
            raise ValueError(f"{self}: use multiple >= 1, offset >= 0 and minimum >= 1")
        if self.maximum is not None and self.at_most(self.maximum) is None:
            raise ValueError(f"{self}: no frame count fits between minimum and maximum")

    def allows(self, frames: int) -> bool:
        fits = frames >= self.minimum and (frames - self.offset) % self.multiple == 0
        return fits and (self.maximum is None or frames <= self.maximum)

    def at_least(self, frames: int) -> int | None:
        """The smallest count it renders that is >= frames, or None when that is over maximum."""
        want = max(frames, self.minimum, self.offset)
        count = want + (-(want - self.offset)) % self.multiple
        return count if self.maximum is None or count <= self.maximum else None

    def at_most(self, frames: int) -> int | None:
        """The largest count it renders that is <= frames, or None when frames is too few."""
        limit = frames if self.maximum is None else min(frames, self.maximum)
        if limit < self.offset:
            return None
        count = limit - (limit - self.offset) % self.multiple
        return count if count >= self.minimum else None

    def describe(self) -> str:
        """e.g. "8k+1 frames, at most 257" or "any number of frames from 2"."""
        if self.multiple == 1:
            rule = f"any number of frames from {self.minimum}"
        else:
            rule = (
                f"{self.multiple}k+{self.offset} frames"
                if self.offset
                else f"{self.multiple}k frames"
            )
        return rule if self.maximum is None else f"{rule}, at most {self.maximum}"


@dataclass(frozen=True)
class EngineInfo:
    """What an engine declares about itself; routing and planning read only this."""

    name: str  # registry name, what --model selects
    family: str  # "embedded", "sd15", "sdxl", "flux", ...
    capabilities: frozenset[Capability]
    model_id: str  # human-readable model identity
    model_hash: str  # sha256 of the weights, hex
    base_area: int  # the pixel area the model was trained at (e.g. 32*32)
    size_multiple: int  # width and height must be multiples of this
    default_steps: int
    default_guidance: float
    max_batch: int = 8
    takes_style: bool = False  # honours style references (--sref)
    licence: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    frame_counts: FrameCounts | None = None  # video engines: the clip lengths one call makes


@runtime_checkable
class Engine(Protocol):
    """One model family behind the shared contract."""

    @property
    def info(self) -> EngineInfo: ...

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        """Run a batch; item i of the result belongs to item i of the batch.

        Same seed and inputs give the same pixels on CPU whether items run alone or batched.
        """
        ...


def check_batch(engine: Engine, batch: Sequence[GenerationInput]) -> None:
    """Refuse a batch the engine cannot run, naming the item and what to change."""
    info = engine.info
    if not batch:
        raise ValueError("empty batch: pass at least one GenerationInput")
    for i, item in enumerate(batch):
        if item.capability not in info.capabilities:
            can = ", ".join(sorted(c.value for c in info.capabilities))
            raise EngineError(
                f"item {i}: engine {info.name!r} cannot do {item.capability.value}; it can do {can}"
            )
        if item.width % info.size_multiple or item.height % info.size_multiple:
            raise EngineError(
                f"item {i}: size {item.width}x{item.height} is not a multiple of "
                f"{info.size_multiple}, which engine {info.name!r} needs"
            )


def run_in_groups(
    batch: Sequence[GenerationInput],
    run: Callable[[list[GenerationInput]], list[GenerationOutput]],
    key: Callable[[GenerationInput], tuple[object, ...]] = GenerationInput.batch_key,
) -> list[GenerationOutput]:
    """Run items with equal keys together, one `run` call a group; outputs in batch order."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, item in enumerate(batch):
        groups.setdefault(key(item), []).append(i)
    outputs: dict[int, GenerationOutput] = {}
    for indices in groups.values():
        outputs.update(zip(indices, run([batch[i] for i in indices]), strict=True))
    return [outputs[i] for i in range(len(batch))]
