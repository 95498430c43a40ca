"""Zero-shot animation from the image model: camera warps, masked re-denoising, interpolation.

There are no video weights here. A clip is made from the embedded image model alone, in the
spirit of Text2Video-Zero: a keyframe (sampled from text, or the given image) is seen through a
moving camera; each base frame is the keyframe warped to the camera's pose, re-noised a little
(with noise that moves with the picture) and denoised again by the image model, so the model
redraws it and invents what the camera uncovers at the edges. Content the model invents is
kept on a canvas, so later frames see the same invented content. At full size, the keyframe's
detail moves with the camera and the model's change is added on top; the temporal step then
interpolates the base frames to the output rate, compensating the camera's motion.

What it cannot do: things do not move on their own (cars fly, clouds drift) except as far as
re-denoising redraws them; that needs a trained video model, which drops in as another engine
with the same capabilities (see docs/video.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imagineer.engines.base import (
    Capability,
    EngineError,
    EngineInfo,
    FrameCounts,
    GenerationInput,
    GenerationOutput,
    RunControl,
    check_batch,
)
from imagineer.engines.embedded.engine import FACTOR, EmbeddedEngine
from imagineer.engines.embedded.sampler import initial_noise
from imagineer.engines.embedded.text import TextStates
from imagineer.video.camera import CameraPath, relative
from imagineer.video.warp import from_uint8_frames, interpolate, smoothstep, to_uint8_frames, warp

METHOD: Final = "zero-shot animation from the image model"
CANVAS: Final = 3  # the canvas spans 3x the picture each way: room for pans and pull-backs
DETAIL_MODES: Final = ("residual", "per_frame")
TEMPORAL_MODES: Final = ("flow", "blend")
_NOISE_SALT: Final = 0x51DE5
PREFILL_AT: Final = (1.0, 0.5, 0.25, 0.75)  # clip fractions whose uncovered parts come first


@dataclass(frozen=True)
class ZeroShotConfig:
    """How clips are made; docs/video.md gives what each choice costs and buys (measured by
    bench/bench_video.py)."""

    base_fps: float = 6.0  # base frames per second of clip, before the temporal step
    min_base_frames: int = 16  # never fewer base frames than this per clip
    steps: int = 3  # Euler steps of a re-denoise where the whole frame is known
    fill_steps: int = 8  # Euler steps where the camera uncovered something to invent
    strength_low: float = 0.12  # noise level warped frames restart from, --motion low
    strength_high: float = 0.24  # the same for --motion high: the model redraws more
    fill_strength: float = 0.85  # uncovered regions start this noisy (outpainting)
    ramp: float = 0.2  # share of the clip over which strength rises from 0 at a given frame
    detail: str = "residual"  # or "per_frame": every base frame upscaled on its own
    temporal: str = "flow"  # or "blend": cross-fade without motion compensation

    def __post_init__(self) -> None:
        if self.min_base_frames < 2 or self.base_fps <= 0:
            raise ValueError("min_base_frames must be >= 2 and base_fps > 0")
        if self.steps < 1 or self.fill_steps < 1:
            raise ValueError("steps and fill_steps must be >= 1")
        for name in ("strength_low", "strength_high", "fill_strength", "ramp"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: use 0..1")
        if self.detail not in DETAIL_MODES:
            raise ValueError(f"detail={self.detail!r}: use one of {DETAIL_MODES}")
        if self.temporal not in TEMPORAL_MODES:
            raise ValueError(f"temporal={self.temporal!r}: use one of {TEMPORAL_MODES}")

    def base_frames(self, seconds: float) -> int:
        return max(self.min_base_frames, math.ceil(seconds * self.base_fps) + 1)

    def strength(self, motion: str) -> float:
        return self.strength_high if motion == "high" else self.strength_low


def default_camera(item: GenerationInput) -> CameraPath:
    """The camera when the caller names none: a push in for a given image (its first frame
    stays whole), a slow pan across a generated keyframe."""
    if item.capability is Capability.IMAGE_TO_VIDEO or item.end_image is not None:
        return CameraPath("dolly_in", item.motion, loop=item.loop)
    seconds = item.num_frames / item.fps
    aspect = item.width / item.height
    return CameraPath("pan_right", item.motion, loop=item.loop).contained(seconds, aspect)


@dataclass
class _Canvas:
    """A picture with room around it: what is known so far, at one resolution."""

    pixels: torch.Tensor  # (1, 3, CANVAS*h, CANVAS*w)
    known: torch.Tensor  # (1, 1, CANVAS*h, CANVAS*w) float 0/1

    @classmethod
    def around(cls, picture: torch.Tensor) -> _Canvas:
        _, c, h, w = picture.shape
        pixels = picture.new_zeros((1, c, CANVAS * h, CANVAS * w))
        known = picture.new_zeros((1, 1, CANVAS * h, CANVAS * w))
        pixels[..., h : 2 * h, w : 2 * w] = picture
        known[..., h : 2 * h, w : 2 * w] = 1.0
        return cls(pixels, known)

    def view(self, mats: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """What each pose sees: (pixels (N, 3, h, w), known (N, 1, h, w) bool)."""
        scaled = _to_canvas(mats)
        grid = F.affine_grid(
            torch.as_tensor(scaled, dtype=torch.float32), [len(scaled), 1, *size], False
        )
        n = len(scaled)
        pixels = F.grid_sample(
            self.pixels.expand(n, -1, -1, -1), grid, padding_mode="border", align_corners=False
        )
        known = F.grid_sample(
            self.known.expand(n, -1, -1, -1), grid, padding_mode="zeros", align_corners=False
        )
        return pixels, known > 0.999

    def paint(self, frame: torch.Tensor, mat: np.ndarray) -> None:
        """Keep the part of `frame` (1, 3, h, w), seen at pose `mat`, that was not known."""
        inverse = np.linalg.inv(np.vstack([_to_canvas(mat[None])[0], [0, 0, 1]]))[:2]
        grid = F.affine_grid(
            torch.as_tensor(inverse[None], dtype=torch.float32),
            [1, 1, self.pixels.shape[-2], self.pixels.shape[-1]],
            False,
        )
        seen = F.grid_sample(frame, grid, padding_mode="border", align_corners=False)
        inside = (grid.abs() <= 1.0).all(dim=-1)[:, None].float()
        new = inside * (1.0 - self.known)
        self.pixels = self.pixels * (1 - new) + seen * new
        self.known = torch.maximum(self.known, new)


def _to_canvas(mats: np.ndarray) -> np.ndarray:
    """Pose matrices in picture coordinates -> the same poses on the CANVAS-times-larger canvas."""
    return np.asarray(mats, dtype=np.float64) / CANVAS


@dataclass(frozen=True)
class _Clip:
    """Everything one clip's steps share."""

    item: GenerationInput
    camera: CameraPath
    seconds: float
    base: int  # base frame count
    size: tuple[int, int]  # output (H, W)
    base_size: tuple[int, int]  # (h, w)
    mats: np.ndarray  # (base, 2, 3) camera poses of the base frames
    out_mats: np.ndarray  # (num_frames, 2, 3) camera poses of the output frames
    strengths: np.ndarray  # (base,) re-denoise strength of each base frame
    blend: np.ndarray  # (base,) weight of the end frame (0 without --end)
    out_blend: np.ndarray  # (num_frames,)
    prefill_mats: np.ndarray  # (k, 2, 3) poses whose uncovered parts are invented up front


class ZeroShotVideoEngine:
    """Text-to-video and image-to-video from the embedded image model (no video weights)."""

    def __init__(self, image: EmbeddedEngine, config: ZeroShotConfig | None = None) -> None:
        self.image = image
        self.config = config or ZeroShotConfig()
        base = image.info
        self._info = EngineInfo(
            name="embedded-video",
            family="embedded",
            capabilities=frozenset({Capability.TEXT_TO_VIDEO, Capability.IMAGE_TO_VIDEO}),
            model_id=f"{base.model_id} ({METHOD})",
            model_hash=base.model_hash,
            base_area=base.base_area,
            size_multiple=base.size_multiple,
            default_steps=base.default_steps,
            default_guidance=base.default_guidance,
            max_batch=1,
            licence=base.licence,
            notes=(
                f"{METHOD}: camera warps of a keyframe, masked re-denoising, motion-compensated "
                "interpolation; no trained video weights",
            ),
            frame_counts=FrameCounts(minimum=2),  # any length: base frames are interpolated
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        check_batch(self, batch)
        return [self._generate_one(item, control) for item in batch]

    def _generate_one(self, item: GenerationInput, control: RunControl) -> GenerationOutput:
        # 1. check inputs, plan the camera
        clip = self._plan(item)
        progress = _Progress(control, item.steps + clip.base + 1)
        # 2. the keyframe: sampled from the text, or the given image
        key_base, key_full = self._keyframe(clip, progress)
        end_base = end_full = None
        if item.end_image is not None:
            end_base, end_full = (
                _resized(item.end_image, clip.base_size),
                _resized(item.end_image, clip.size),
            )
        # 3. the base clip: warped keyframe, moving noise, masked re-denoising
        canvas_base, canvas_full = _Canvas.around(key_base), _Canvas.around(key_full)
        base_frames = self._base_clip(clip, canvas_base, canvas_full, end_base, progress)
        # 4. full size and 5. the temporal step to the output rate
        frames = self._full_clip(clip, base_frames, canvas_base, canvas_full, end_base, end_full)
        progress.done()
        extras = (
            *clip_extras(METHOD, clip),
            ("strength", self.config.strength(item.motion)),
            ("detail", self.config.detail),
            ("temporal", self.config.temporal),
            ("frames", len(frames)),
            ("fps", item.fps),
        )
        return GenerationOutput(tuple(frames), item.seed, item.steps, item.guidance, extras)

    # --- the steps -----------------------------------------------------------------------------

    def _plan(self, item: GenerationInput) -> _Clip:
        if item.num_frames < 2:
            raise EngineError(f"num_frames={item.num_frames}: a clip needs at least 2 frames")
        if item.fps < 1:
            raise EngineError(f"fps={item.fps}: use at least 1")
        if item.capability is Capability.IMAGE_TO_VIDEO and item.init_image is None:
            raise EngineError("image-to-video needs the first frame as init_image")
        if item.loop and item.end_image is not None:
            raise EngineError("--loop and --end conflict: a loop ends on its own first frame")
        camera = item.camera if item.camera is not None else default_camera(item)
        if item.loop and not camera.loop:
            camera = dataclasses.replace(camera, loop=True)
        seconds = item.num_frames / item.fps
        aspect = item.width / item.height
        base = self.config.base_frames(seconds)
        ts = np.linspace(0.0, 1.0, base)
        out_ts = np.arange(item.num_frames) / (
            item.num_frames if item.loop else item.num_frames - 1
        )
        strength = self.config.strength(item.motion)
        ramp = max(self.config.ramp, 1e-6)
        # given frames stay exact: the first (always) and the last (--end, --loop)
        pinned_end = item.loop or item.end_image is not None
        envelope = np.minimum(1.0, ts / ramp)
        if pinned_end:
            envelope = np.minimum(envelope, (1.0 - ts) / ramp)
        has_end = item.end_image is not None
        return _Clip(
            item=item,
            camera=camera,
            seconds=seconds,
            base=base,
            size=(item.height, item.width),
            base_size=(item.height // FACTOR, item.width // FACTOR),
            mats=np.stack([camera.pose(float(t), seconds).matrix(aspect) for t in ts]),
            out_mats=np.stack([camera.pose(float(t), seconds).matrix(aspect) for t in out_ts]),
            strengths=strength * envelope,
            blend=np.array([smoothstep(float(t)) if has_end else 0.0 for t in ts]),
            out_blend=np.array([smoothstep(float(t)) if has_end else 0.0 for t in out_ts]),
            prefill_mats=np.stack([camera.pose(t, seconds).matrix(aspect) for t in PREFILL_AT]),
        )

    def _keyframe(self, clip: _Clip, progress: _Progress) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, h, w) and (1, 3, H, W) in [-1, 1]: the picture the camera moves over."""
        item = clip.item
        if item.init_image is not None:
            return _resized(item.init_image, clip.base_size), _resized(item.init_image, clip.size)
        still = dataclasses.replace(
            item, capability=Capability.TEXT_TO_IMAGE, camera=None, end_image=None, loop=False
        )
        key_base = self.image.sample_base([still], progress.sub(0))
        return key_base, self.image.upscaler.upscale(key_base, FACTOR)

    @torch.no_grad()
    def _base_clip(
        self,
        clip: _Clip,
        canvas: _Canvas,
        canvas_full: _Canvas,
        end_base: torch.Tensor | None,
        progress: _Progress,
    ) -> torch.Tensor:
        """(base, 3, h, w): each base frame redrawn by the image model, in order."""
        item = clip.item
        cond = self.image.text.encode([item.prompt])
        uncond = self.image.text.encode([item.negative_prompt])
        noise_canvas = _noise_canvas(item.seed, clip.base_size)
        # invent what the camera will uncover in a few large pieces first: filled frame by
        # frame, each new sliver would be invented on its own and the seams would show
        for mat in clip.prefill_mats:
            seen, known = canvas.view(mat[None], clip.base_size)
            if not bool(known.all()):
                noise = noise_canvas.view_nearest(mat[None], clip.base_size)
                fill = self._redenoise(seen, known, noise, 0.0, cond, uncond, item.guidance)
                self._paint(fill, mat, canvas, canvas_full)
        frames = []
        for j in range(clip.base):
            mat = clip.mats[j : j + 1]
            seen, known = canvas.view(mat, clip.base_size)
            noise = noise_canvas.view_nearest(mat, clip.base_size)
            if end_base is not None and clip.blend[j] > 0:
                end_mat = _end_relative(clip, mat[0])
                end_seen, _ = warp(end_base, end_mat[None])
                seen = (1 - clip.blend[j]) * seen + clip.blend[j] * end_seen
            frame = self._redenoise(
                seen, known, noise, float(clip.strengths[j]), cond, uncond, item.guidance
            )
            if not bool(known.all()):
                self._paint(frame, mat[0], canvas, canvas_full)
            frames.append(frame)
            progress.step(item.steps + j + 1)
        return torch.cat(frames)

    def _paint(
        self, frame: torch.Tensor, mat: np.ndarray, canvas: _Canvas, canvas_full: _Canvas
    ) -> None:
        """Keep what `frame` (seen at pose `mat`) invented, at base size and upscaled."""
        canvas.paint(frame, mat)
        if self.config.detail == "residual":  # the full-size canvas learns the new part too
            canvas_full.paint(self.image.upscaler.upscale(frame, FACTOR), mat)

    def _redenoise(
        self,
        seen: torch.Tensor,
        known: torch.Tensor,
        noise: torch.Tensor,
        strength: float,
        cond: TextStates,
        uncond: TextStates,
        guidance: float,
    ) -> torch.Tensor:
        """Noise `seen` (1, 3, h, w) to `strength` (uncovered parts further) and denoise it.

        Known pixels are held to the noised warp until the schedule reaches their own
        strength, so the model invents only what is new and redraws the rest lightly.
        """
        cfg = self.config
        uncovered = not bool(known.all())
        t0 = max(cfg.fill_strength, strength) if uncovered else strength
        if t0 <= 0.0:
            return seen
        steps = cfg.fill_steps if uncovered else cfg.steps
        hold = known.float()
        x = (1 - t0) * seen + t0 * noise
        both = TextStates.cat([cond, uncond]).to(seen.device)
        unet = self.image.unet
        for k in range(steps):
            t = t0 * (1 - k / steps)
            t_next = t0 * (1 - (k + 1) / steps)
            tt = torch.full((2,), t, device=seen.device)
            v_cond, v_uncond = unet(torch.cat([x, x]), tt, both).chunk(2)
            x = x + (t_next - t) * (v_uncond + guidance * (v_cond - v_uncond))
            if t_next > strength:
                x = hold * ((1 - t_next) * seen + t_next * noise) + (1 - hold) * x
        return x.clamp(-1, 1)

    @torch.no_grad()
    def _full_clip(
        self,
        clip: _Clip,
        base_frames: torch.Tensor,
        canvas: _Canvas,
        canvas_full: _Canvas,
        end_base: torch.Tensor | None,
        end_full: torch.Tensor | None,
    ) -> list[np.ndarray]:
        """The output frames (H, W, 3) uint8 at the output rate."""
        cfg, item = self.config, clip.item
        flow = cfg.temporal == "flow"
        if cfg.detail == "per_frame":
            big = torch.cat([self.image.upscaler.upscale(f[None], FACTOR) for f in base_frames])
            return to_uint8_frames(
                interpolate(
                    big,
                    item.num_frames,
                    mats=clip.mats if flow else None,
                    out_mats=clip.out_mats if flow else None,
                    loop=item.loop,
                )
            )
        # residual: what the model changed at base size, smoothly enlarged, moved like the rest
        seen, _ = canvas.view(clip.mats, clip.base_size)
        if end_base is not None:
            end_seen, _ = warp(end_base, np.stack([_end_relative(clip, m) for m in clip.mats]))
            weights = torch.as_tensor(clip.blend, dtype=seen.dtype).view(-1, 1, 1, 1)
            seen = (1 - weights) * seen + weights * end_seen
        change = F.interpolate(
            base_frames - seen, size=clip.size, mode="bicubic", align_corners=False
        )
        change = interpolate(
            change,
            item.num_frames,
            mats=clip.mats if flow else None,
            out_mats=clip.out_mats if flow else None,
            loop=item.loop,
        )
        frames = []
        for start in range(0, item.num_frames, 32):
            mats = clip.out_mats[start : start + 32]
            picture, _ = canvas_full.view(mats, clip.size)
            if end_full is not None:
                rel = np.stack([_end_relative(clip, m) for m in mats])
                end_seen, _ = warp(end_full, rel)
                w = torch.as_tensor(clip.out_blend[start : start + 32], dtype=picture.dtype)
                w = w.view(-1, 1, 1, 1)
                picture = (1 - w) * picture + w * end_seen
            frames += to_uint8_frames(picture + change[start : start + 32])
        return frames


Extras = tuple[tuple[str, str | int | float | bool], ...]


def clip_extras(method: str, clip: _Clip) -> Extras:
    """What every clip's recipe records of how it was made (engines add their own)."""
    item = clip.item
    return (
        ("method", method),
        ("camera", clip.camera.to_text()),
        ("motion", item.motion),
        ("loop", item.loop),
        ("base_frames", clip.base),
        ("base_size", f"{clip.base_size[1]}x{clip.base_size[0]}"),
    )


def _end_relative(clip: _Clip, mat: np.ndarray) -> np.ndarray:
    """Where the end image is seen from pose `mat`: it is what the camera shows at the end."""
    return relative(clip.mats[-1], mat)


class _NoiseCanvas:
    """Gaussian noise fixed to the picture (and the room around it): it moves with the camera."""

    def __init__(self, noise: torch.Tensor) -> None:
        self.noise = noise  # (1, 3, CANVAS*h, CANVAS*w)

    def view_nearest(self, mats: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        # nearest keeps the noise Gaussian with unit variance (bilinear would average it down)
        scaled = torch.as_tensor(_to_canvas(mats), dtype=torch.float32)
        grid = F.affine_grid(scaled, [len(scaled), 1, *size], False)
        out = F.grid_sample(
            self.noise.expand(len(scaled), -1, -1, -1),
            grid,
            mode="nearest",
            padding_mode="border",
            align_corners=False,
        )
        return out


def _noise_canvas(seed: int, base_size: tuple[int, int]) -> _NoiseCanvas:
    """The keyframe's own noise in the middle (its seed), more noise from the seed around it."""
    h, w = base_size
    around = initial_noise(seed ^ _NOISE_SALT, (3, CANVAS * h, CANVAS * w))
    around[:, h : 2 * h, w : 2 * w] = initial_noise(seed, (3, h, w))
    return _NoiseCanvas(around[None])


def _resized(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An (H, W, 3) uint8 image at `size` (h, w) as (1, 3, h, w) in [-1, 1]."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EngineError(f"image of shape {image.shape} and {image.dtype}: pass (H, W, 3) uint8")
    h, w = size
    if image.shape[:2] != (h, w):
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))
    return from_uint8_frames([image])


class _Progress:
    """One clip's progress as (steps done, steps in all) through the caller's RunControl."""

    def __init__(self, control: RunControl, total: int) -> None:
        self.control, self.total = control, total

    def step(self, done: int) -> None:
        self.control.step(min(done, self.total), self.total)

    def sub(self, offset: int) -> RunControl:
        """A RunControl for an inner call whose steps count from `offset`."""

        def report(step: int, _total: int, _preview: np.ndarray | None = None) -> None:
            self.step(offset + step)

        return RunControl(on_progress=report, should_cancel=self.control.should_cancel)

    def done(self) -> None:
        self.step(self.total)
