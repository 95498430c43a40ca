"""Clips from the trained embedded video model: a keyframe, then windows of frames made together.

Text-to-video first samples the keyframe with the image model (as Emu Video does); image-to-video
takes the given image. The video model then makes the base clip at base size (32x32 for a square
clip) in windows of 16 frames at 6 per second, every frame conditioned on the window's first frame
(and the end frame for --end and --loop) and on the camera move at the --motion level; a clip
longer than one window goes on in windows that start from the last frames made. The motion the
model drew is estimated from the base frames; the full-size keyframe moves along it with the
model's change added (or each base frame is upscaled on its own), so the first frame of an
animation is the image itself; then the temporal step interpolates to the output rate with that
motion compensated.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F

from imagineer.engines.base import (
    EngineError,
    EngineInfo,
    FrameCounts,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.engines.embedded.engine import FACTOR, EmbeddedEngine, read_exported, weights_dir
from imagineer.engines.embedded.sampler import initial_noise
from imagineer.engines.embedded.text import TextStates
from imagineer.engines.embedded.video_unet import (
    ClipCondition,
    VideoUNet,
    VideoUNetConfig,
    camera_index,
)
from imagineer.video.camera import relative
from imagineer.video.warp import (
    estimate_motion,
    frame_positions,
    interpolate,
    lerp_mats,
    to_uint8_frames,
    warp,
)
from imagineer.video.zeroshot import (
    ZeroShotConfig,
    ZeroShotVideoEngine,
    _Clip,
    _Progress,
    _resized,
    clip_extras,
)

METHOD: Final = "trained video model"
VIDEO_FILE: Final = "embedded_video.safetensors"
WINDOW: Final = 16  # frames the model denoises together (what it was trained on)
CONTEXT: Final = 4  # frames a following window starts from
_WINDOW_SALT: Final = 0x7E2D
# Where a base frame differs from the given image (seen along the motion) by this much (mean
# absolute, of 2), the model changed the picture there and the image's detail is left out.
DETAIL_CHANGE: Final = 0.25


def video_weights_available(folder: Path | None = None) -> str | None:
    """None when the video weights are present, else what is missing."""
    path = (folder or weights_dir()) / VIDEO_FILE
    return None if path.exists() else f"missing {path.name} (train with `imagineer train video`)"


# a given picture: (its base frame index, at base size, at full size, its share of each frame)
Given = list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class LearnedConfig:
    """Sampling choices of the trained model (bench/bench_video.py measures them)."""

    guidance: float = 1.5  # text guidance; the start frame already carries most of the content
    base_fps: float = 6.0  # the rate the model was trained at
    detail: str = "residual"  # or "per_frame": every base frame upscaled on its own

    def __post_init__(self) -> None:
        if self.detail not in ("residual", "per_frame"):
            raise ValueError(f"detail={self.detail!r}: use residual or per_frame")


class LearnedVideoEngine(ZeroShotVideoEngine):
    """Text-to-video and image-to-video with the trained video model over the image engine."""

    def __init__(
        self,
        image: EmbeddedEngine,
        model: VideoUNet,
        *,
        model_hash: str,
        trained: str = "",
        config: LearnedConfig | None = None,
    ) -> None:
        self.learned = config or LearnedConfig()
        # the zero-shot planner gives camera poses and base frame times: 6 per second, from 2
        super().__init__(image, ZeroShotConfig(base_fps=self.learned.base_fps, min_base_frames=2))
        self.model = model.eval().to(image.device)
        base = self._info
        self._info = dataclasses.replace(
            base,
            model_id=f"imagineer-embedded-video-v1 ({METHOD}{', ' + trained if trained else ''})",
            model_hash=model_hash,
            notes=(
                f"{METHOD}: windows of {WINDOW} frames at {self.learned.base_fps:g} per second at "
                f"base size, {self.learned.detail} detail, interpolation along the drawn motion",
            ),
            frame_counts=FrameCounts(minimum=2),
        )

    @classmethod
    def load(cls, image: EmbeddedEngine, folder: Path | None = None) -> LearnedVideoEngine:
        path = (folder or weights_dir()) / VIDEO_FILE
        if not path.exists():
            raise EngineError(video_weights_available(folder) or str(path))
        exported = read_exported(path)
        model = VideoUNet(VideoUNetConfig.from_dict(exported.config))
        model.load_grown(exported.state)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        trained = f"step {exported.meta.get('step', '?')}"
        return cls(image, model, model_hash=digest, trained=trained)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def _generate_one(self, item: GenerationInput, control: RunControl) -> GenerationOutput:
        clip = self._plan(item)
        steps = item.steps  # Euler steps per window, as many as the keyframe's
        windows = _window_plan(clip.base)
        progress = _Progress(control, item.steps + steps * len(windows) + 1)
        key_base, key_full = self._keyframe(clip, progress)
        end_base = end_full = None
        if item.end_image is not None:
            end_base = _resized(item.end_image, clip.base_size)
            end_full = _resized(item.end_image, clip.size)
        elif item.loop:
            end_base, end_full = key_base, key_full
        base_frames = self._base_clip_learned(
            clip, key_base, end_base, windows, steps, progress, item.steps
        )
        frames = self._full_learned(clip, base_frames, key_base, key_full, end_base, end_full)
        progress.done()
        extras = (
            *clip_extras(METHOD, clip),
            ("windows", len(windows)),
            ("video_steps", steps),
            ("video_guidance", self.learned.guidance),
            ("detail", self.learned.detail),
            ("temporal", "flow"),
            ("frames", len(frames)),
            ("fps", item.fps),
        )
        return GenerationOutput(tuple(frames), item.seed, item.steps, item.guidance, extras)

    @torch.no_grad()
    def _base_clip_learned(
        self,
        clip: _Clip,
        key_base: torch.Tensor,
        end_base: torch.Tensor | None,
        windows: list[tuple[int, int]],
        steps: int,
        progress: _Progress,
        offset: int,
    ) -> torch.Tensor:
        """(base, 3, h, w): the keyframe, then each window's new frames."""
        item = clip.item
        cond = self.image.text.encode([item.prompt])
        uncond = self.image.text.encode([item.negative_prompt])
        both = TextStates.cat([cond, uncond]).to(self.image.device)
        camera = torch.tensor([camera_index(clip.camera.move, clip.camera.motion)] * 2)
        made = key_base.to(self.image.device)
        for w, (start, size) in enumerate(windows):
            given = made[start:]  # the frames this window starts from
            last = start + size == clip.base
            has_end = end_base is not None and last
            end = end_base if has_end and end_base is not None else torch.zeros_like(key_base)
            condition = ClipCondition(
                start=given[:1].expand(2, -1, -1, -1),
                end=end.to(given.device).expand(2, -1, -1, -1),
                has_start=torch.ones(2),
                has_end=torch.full((2,), float(has_end)),
                camera=camera,
            ).to(given.device)
            known = torch.zeros(size, dtype=torch.bool)
            known[: len(given)] = True
            fixed = torch.zeros(size, 3, *clip.base_size, device=given.device)
            fixed[: len(given)] = given
            if has_end and end_base is not None:
                known[-1] = True
                fixed[-1] = end_base[0]
            noise = initial_noise(item.seed ^ (_WINDOW_SALT * (w + 1)), (size, 3, *clip.base_size))
            x = self._denoise(fixed, known, noise.to(given.device), both, condition, steps)
            made = torch.cat([made, x[len(given) :]])
            progress.step(offset + steps * (w + 1))
        return made[: clip.base]

    def _denoise(
        self,
        fixed: torch.Tensor,
        known: torch.Tensor,
        noise: torch.Tensor,
        both: TextStates,
        condition: ClipCondition,
        steps: int,
    ) -> torch.Tensor:
        """Euler steps from noise to frames; known frames stay clean (t = 0) throughout."""
        hold = known.to(fixed.device)[:, None, None, None].float()
        x = hold * fixed + (1 - hold) * noise
        g = self.learned.guidance
        for k in range(steps):
            t, t_next = 1 - k / steps, 1 - (k + 1) / steps
            tt = torch.where(known, 0.0, t).to(fixed.device)
            v_cond, v_uncond = self.model.forward_clip(
                torch.cat([x, x]), torch.cat([tt, tt]), both, condition
            ).chunk(2)
            v = v_uncond + g * (v_cond - v_uncond)
            x = x + (t_next - t) * v * (1 - hold)
        return x.clamp(-1, 1)

    @torch.no_grad()
    def _full_learned(
        self,
        clip: _Clip,
        base_frames: torch.Tensor,
        key_base: torch.Tensor,
        key_full: torch.Tensor,
        end_base: torch.Tensor | None,
        end_full: torch.Tensor | None,
    ) -> list[np.ndarray]:
        """The output frames at full size and rate. The motion the model actually drew is
        estimated from the base frames (starting from the camera's plan); "residual" detail
        moves the full-size keyframe (and end image) along it and adds what the model changed
        at base size, smoothly enlarged; "per_frame" upscales every base frame and adds the
        given image's own detail where the model did not change the picture."""
        item = clip.item
        planned = np.stack([relative(clip.mats[0], m) for m in clip.mats])
        mats = estimate_motion(base_frames, planned)  # frame k's view of frame 0's picture
        given = [(0, key_base, key_full, 1.0 - torch.as_tensor(clip.blend))]
        if item.end_image is not None and end_base is not None and end_full is not None:
            given.append((clip.base - 1, end_base, end_full, torch.as_tensor(clip.blend)))
        views = [np.stack([relative(mats[index], m) for m in mats]) for index, *_ in given]
        if self.learned.detail == "per_frame":
            big = self._per_frame(clip, base_frames, given, views)
        else:
            big = self._residual(clip, base_frames, given, views)
        big[0] = key_full[0]  # a given first (and last) frame is shown as given
        if item.end_image is not None and end_full is not None:
            big[-1] = end_full[0]
        out_mats = lerp_mats(mats, frame_positions(clip.base, item.num_frames, loop=item.loop))
        out = interpolate(big, item.num_frames, mats=mats, out_mats=out_mats, loop=item.loop)
        return to_uint8_frames(out)

    def _upscaled(self, frames: torch.Tensor) -> torch.Tensor:
        up = self.image.upscaler
        return torch.cat([up.upscale(frames[i : i + 8], FACTOR) for i in range(0, len(frames), 8)])

    def _residual(
        self, clip: _Clip, base_frames: torch.Tensor, given: Given, views: list[np.ndarray]
    ) -> torch.Tensor:
        """The given pictures moved along the drawn motion, plus the model's change, enlarged."""
        seen = torch.zeros_like(base_frames)
        for (_, small, _, share), rel in zip(given, views, strict=True):
            seen += share.to(seen.dtype).view(-1, 1, 1, 1) * warp(small, rel)[0]
        change = base_frames - seen
        chunks = []
        for i in range(0, clip.base, 8):
            moved = [
                warp(full, rel[i : i + 8]) for (*_, full, _), rel in zip(given, views, strict=True)
            ]
            shares = [
                share[i : i + 8].to(base_frames.dtype).view(-1, 1, 1, 1) for *_, share in given
            ]
            picture = torch.stack([w * m for (m, _), w in zip(moved, shares, strict=True)]).sum(0)
            inside = torch.stack([within for _, within in moved]).all(dim=0)
            enlarged = F.interpolate(
                change[i : i + 8], size=clip.size, mode="bicubic", align_corners=False
            )
            frames = picture + enlarged
            if not bool(inside.all()):  # the camera left the picture: the model's frame there
                frames = torch.where(inside, frames, self._upscaled(base_frames[i : i + 8]))
            chunks.append(frames)
        return torch.cat(chunks)

    def _per_frame(
        self, clip: _Clip, base_frames: torch.Tensor, given: Given, views: list[np.ndarray]
    ) -> torch.Tensor:
        """Every base frame upscaled, plus each given picture's own detail (what the upscaler
        cannot know) where the model did not change the picture."""
        big = self._upscaled(base_frames)
        up = self.image.upscaler
        for (_, small, full, share), rel in zip(given, views, strict=True):
            seen, inside = warp(small, rel)
            change = (base_frames - seen).abs().mean(dim=1, keepdim=True)
            keep = (1.0 - change / DETAIL_CHANGE).clamp(0.0, 1.0) * inside.float()
            keep = F.interpolate(keep, size=clip.size, mode="bilinear", align_corners=False)
            detail = full - up.upscale(small, FACTOR)
            for i in range(0, clip.base, 8):
                moved, _ = warp(detail, rel[i : i + 8])
                weight = share[i : i + 8].to(big.dtype).view(-1, 1, 1, 1) * keep[i : i + 8]
                big[i : i + 8] += weight * moved
        return big


def _window_plan(base: int) -> list[tuple[int, int]]:
    """(index of the window's first given frame, window size) for a clip of `base` frames."""
    windows = [(0, min(WINDOW, base))]
    made = windows[0][1]
    while made < base:
        start = made - CONTEXT
        size = min(WINDOW, base - start)
        windows.append((start, size))
        made = start + size
    return windows
