"""Temporal metrics of a clip: motion-compensated frame error, jitter, flicker, camera motion.

All figures are in 8-bit levels (0..255) per pixel and channel, or pixels per frame. With the
camera's pose matrices, each frame is first warped to the next frame's pose, so the camera's
own motion is not counted as change; what remains is what moved or changed by itself (cars,
clouds, light) and what flickers. The world's rendered clips, with the same camera, are the
reference: they hold real motion and no flicker.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from imagineer.video.camera import relative
from imagineer.video.warp import from_uint8_frames, warp

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class TemporalReport:
    """Temporal figures of one clip."""

    frames: int
    compensated_error: float  # mean |F[t] - F[t-1] warped to t's pose|, inside pixels
    jitter: float  # mean |F[t] - (F[t-1] + F[t+1]) / 2| after compensation: back-and-forth
    flicker: float  # mean |mean luma[t] - mean luma[t-1]|: the whole picture pulsing
    camera_px_per_frame: float  # mean camera displacement (0 without matrices)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _aligned_to(
    frames: torch.Tensor, mats: np.ndarray | None, src: int, dst: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame `src` seen from frame `dst`'s pose, and where it covers it."""
    if mats is None:
        return frames[src : src + 1], torch.ones_like(frames[:1, :1], dtype=torch.bool)
    return warp(frames[src : src + 1], relative(mats[src], mats[dst])[None])


def temporal_report(frames: Sequence[np.ndarray], mats: np.ndarray | None = None) -> TemporalReport:
    """The temporal figures of (H, W, 3) uint8 `frames`, with the camera's (N, 2, 3) poses
    when known (see CameraPath.matrices)."""
    if len(frames) < 3:
        raise ValueError(f"{len(frames)} frames: temporal figures need at least 3")
    if mats is not None and len(mats) != len(frames):
        raise ValueError(f"{len(mats)} matrices for {len(frames)} frames: give one per frame")
    x = from_uint8_frames(frames) * 127.5  # (N, 3, H, W) in levels around 0
    errors, jitters = [], []
    for t in range(1, len(frames)):
        before, inside = _aligned_to(x, mats, t - 1, t)
        diff = (x[t : t + 1] - before).abs()
        errors.append(float(diff.mean(dim=1, keepdim=True)[inside].mean()))
        if t + 1 < len(frames):
            after, inside_after = _aligned_to(x, mats, t + 1, t)
            both = inside & inside_after
            second = (x[t : t + 1] - (before + after) / 2).abs().mean(dim=1, keepdim=True)
            jitters.append(float(second[both].mean()))
    luma = (x * _LUMA).sum(dim=1).mean(dim=(1, 2))  # (N,)
    return TemporalReport(
        frames=len(frames),
        compensated_error=float(np.mean(errors)),
        jitter=float(np.mean(jitters)),
        flicker=float((luma[1:] - luma[:-1]).abs().mean()),
        camera_px_per_frame=camera_speed(mats, frames[0].shape[:2]) if mats is not None else 0.0,
    )


def camera_speed(mats: np.ndarray, size: tuple[int, int]) -> float:
    """Mean displacement of the picture's pixels between frames, in output pixels."""
    h, w = size
    ys, xs = np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])  # (3, 81)
    moves = []
    for a, b in itertools.pairwise(mats):
        delta = (relative(a, b) @ points) - points[:2]  # where b's pixels were in a
        moves.append(np.hypot(delta[0] * w / 2, delta[1] * h / 2).mean())
    return float(np.mean(moves)) if moves else 0.0
