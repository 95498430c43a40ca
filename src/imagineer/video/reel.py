"""Putting a reel together: shots stitched with cuts or crossfades, a poster, a contact sheet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from imagineer.media.images import array_to_image, make_grid
from imagineer.video.storyboard import Storyboard

SHEET_FRAMES_PER_SHOT = 5


def stitch(clips: Sequence[Sequence[np.ndarray]], board: Storyboard) -> list[np.ndarray]:
    """The reel's frames: each shot's clip in order, crossfading where the storyboard says."""
    # 1. check inputs
    if len(clips) != len(board.shots):
        raise ValueError(f"{len(clips)} clips for {len(board.shots)} shots: give one per shot")
    for shot, clip in zip(board.shots, clips, strict=True):
        if len(clip) != shot.frames:
            raise ValueError(f"shot {shot.index} has {len(clip)} frames, expected {shot.frames}")
    sizes = {clip[0].shape for clip in clips}
    if len(sizes) != 1:
        raise ValueError(f"the shots differ in size ({sorted(sizes)}): render them at one size")
    # 2. join: a crossfade blends the last frames of the reel so far with the shot's first
    out: list[np.ndarray] = []
    for shot, clip in zip(board.shots, clips, strict=True):
        if out and shot.transition == "crossfade":
            n = board.crossfade
            for k in range(n):
                w = (k + 1) / (n + 1)
                mixed = (1 - w) * out[-n + k].astype(np.float32) + w * clip[k].astype(np.float32)
                out[-n + k] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
            out.extend(clip[n:])
        else:
            out.extend(clip)
    if len(out) != board.total_frames:
        raise RuntimeError(f"stitched {len(out)} frames, the storyboard says {board.total_frames}")
    return out


def shot_frames(frames: Sequence[np.ndarray], board: Storyboard) -> list[list[np.ndarray]]:
    """The reel's frames grouped by the shot that owns them (see Storyboard.ranges)."""
    if len(frames) != board.total_frames:
        raise ValueError(f"{len(frames)} frames for a {board.total_frames}-frame storyboard")
    return [list(frames[a:b]) for a, b in board.ranges()]


def poster_index(board: Storyboard) -> int:
    """The poster frame: the middle of the establishing shot, where the whole scene shows."""
    start, end = board.ranges()[0]
    return (start + end - 1) // 2


def contact_sheet(
    frames: Sequence[np.ndarray], board: Storyboard, per_shot: int = SHEET_FRAMES_PER_SHOT
) -> Image.Image:
    """One row per shot, `per_shot` frames evenly spread over the frames the shot owns."""
    if per_shot < 1:
        raise ValueError(f"per_shot={per_shot}: use at least 1")
    picked = []
    for owned in shot_frames(frames, board):
        idx = np.linspace(0, len(owned) - 1, per_shot).round().astype(int)
        picked += [array_to_image(owned[i]) for i in idx]
    return make_grid(picked, cols=per_shot, gap=2)
