"""Camera moves as affine paths over a clip (pan, tilt, dolly, orbit), sized by --motion.

A pose says which window of a picture the camera sees: its zoom (above 1 is closer, a smaller
window), the window's centre offset and a roll. `Pose.matrix` maps output coordinates to
picture coordinates in the normalised [-1, 1] convention of `torch.nn.functional.grid_sample`
(align_corners=False), so the same numbers drive the zero-shot engine's warps, the world's
reference videos and the motion-compensated metrics. Pure numpy: no torch import here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

CAMERA_MOVES: Final = (
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "dolly_in",
    "dolly_out",
    "orbit_left",
    "orbit_right",
)
MOTIONS: Final = ("low", "high")
MAX_ZOOM: Final = 4.0


@dataclass(frozen=True)
class Speed:
    """How fast the camera moves at one --motion level, per second of clip."""

    pan: float  # window centre travel, in picture widths (or heights, for tilts)
    zoom: float  # relative zoom change (0.05: 5% closer each second)
    roll: float  # degrees of roll during an orbit


# --motion low is a slow drift; high is about three times faster (measured in bench_video).
SPEEDS: Final = {
    "low": Speed(pan=0.025, zoom=0.04, roll=0.4),
    "high": Speed(pan=0.075, zoom=0.12, roll=1.2),
}


@dataclass(frozen=True)
class Pose:
    """The camera's window on a picture; the identity pose sees the whole picture."""

    zoom: float = 1.0  # > 1: closer, a window 1/zoom of the picture's size
    x: float = 0.0  # window centre, in picture widths right of the centre
    y: float = 0.0  # window centre, in picture heights below the centre
    roll: float = 0.0  # degrees, counter-clockwise

    def __post_init__(self) -> None:
        if not (isinstance(self.zoom, int | float) and 1 / MAX_ZOOM <= self.zoom <= MAX_ZOOM):
            raise ValueError(f"zoom={self.zoom!r}: use {1 / MAX_ZOOM} to {MAX_ZOOM}")
        for name in ("x", "y", "roll"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name}={value!r}: use a finite number")

    def matrix(self, aspect: float = 1.0) -> np.ndarray:
        """(2, 3): output (u, v, 1) in [-1, 1] -> picture (u, v); aspect is width / height."""
        a = math.radians(self.roll)
        cos, sin = math.cos(a) / self.zoom, math.sin(a) / self.zoom
        # rotate in square pixels: scale u by the aspect, rotate, scale back
        return np.array(
            [[cos, -sin / aspect, 2 * self.x], [sin * aspect, cos, 2 * self.y]], dtype=np.float64
        )


def homogeneous(m: np.ndarray) -> np.ndarray:
    """(..., 2, 3) -> (..., 3, 3) with a last row (0, 0, 1)."""
    out = np.zeros((*m.shape[:-2], 3, 3), dtype=np.float64)
    out[..., :2, :] = m
    out[..., 2, 2] = 1.0
    return out


def relative(from_m: np.ndarray, to_m: np.ndarray) -> np.ndarray:
    """(2, 3) taking output coords of the frame posed `to_m` to those of the frame `from_m`.

    Sampling frame A (pose matrix `from_m`) at `relative(from_m, to_m)` shows what the camera
    at pose `to_m` sees, as far as frame A covers it: the motion compensation between frames.
    """
    return (np.linalg.inv(homogeneous(from_m)) @ homogeneous(to_m))[..., :2, :]


def _ease_loop(t: float) -> float:
    """0 -> 1 -> 0 over t in [0, 1], with zero velocity at the turns."""
    return (1.0 - math.cos(2.0 * math.pi * t)) / 2.0


@dataclass(frozen=True)
class CameraPath:
    """A named move at a --motion speed, from a start pose, over one clip."""

    move: str = "static"
    motion: str = "low"
    start: Pose = Pose()
    loop: bool = False  # the path returns to its start pose at the end of the clip

    def __post_init__(self) -> None:
        if self.move not in CAMERA_MOVES:
            raise ValueError(f"camera move {self.move!r}: use one of {', '.join(CAMERA_MOVES)}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion {self.motion!r}: use low or high")
        if not isinstance(self.start, Pose):
            raise ValueError(f"start={self.start!r} must be a Pose")

    def pose(self, t: float, seconds: float) -> Pose:
        """The pose at fraction `t` (0..1) of a clip `seconds` long."""
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t={t}: use 0..1")
        speed = SPEEDS[self.motion]
        elapsed = seconds * (_ease_loop(t) * 0.5 if self.loop else t)
        pan = speed.pan * elapsed
        s = self.start
        if self.move.startswith("pan_"):
            return replace(s, x=s.x + (pan if self.move == "pan_right" else -pan))
        if self.move.startswith("tilt_"):
            return replace(s, y=s.y + (pan if self.move == "tilt_down" else -pan))
        if self.move.startswith("dolly_"):
            grow = (1.0 + speed.zoom) ** elapsed
            zoom = s.zoom * grow if self.move == "dolly_in" else s.zoom / grow
            return replace(s, zoom=min(MAX_ZOOM, max(1 / MAX_ZOOM, zoom)))
        if self.move.startswith("orbit_"):
            sign = 1.0 if self.move == "orbit_right" else -1.0
            # an arc: sideways travel with a slight rise, a roll into the turn and a push in
            arc = math.sin(math.pi * min(1.0, elapsed / max(seconds, 1e-9)))
            return replace(
                s,
                x=s.x + sign * pan,
                y=s.y - 0.15 * pan * arc,
                roll=s.roll - sign * speed.roll * elapsed,
                zoom=s.zoom * (1.0 + 0.5 * speed.zoom) ** elapsed,
            )
        return s

    def matrices(self, count: int, seconds: float, aspect: float = 1.0) -> np.ndarray:
        """(count, 2, 3): the pose matrix at `count` evenly spaced times from start to end."""
        if count < 1:
            raise ValueError(f"count={count}: use at least 1")
        ts = [0.0] if count == 1 else [i / (count - 1) for i in range(count)]
        return np.stack([self.pose(t, seconds).matrix(aspect) for t in ts])

    def contained(self, seconds: float, aspect: float = 1.0) -> CameraPath:
        """The same move from a closer start, so the window never leaves the picture.

        The path is also shifted to be centred on the start pose, so a pan sweeps across the
        middle instead of drifting off one side: no exposed edges to invent.
        """
        samples = [self.pose(i / 16, seconds) for i in range(17)]
        mid_x = (min(p.x for p in samples) + max(p.x for p in samples)) / 2 - self.start.x
        mid_y = (min(p.y for p in samples) + max(p.y for p in samples)) / 2 - self.start.y
        centred = replace(
            self, start=replace(self.start, x=self.start.x - mid_x, y=self.start.y - mid_y)
        )
        low, high = 1.0, MAX_ZOOM / max(p.zoom for p in samples)
        if centred._inside(seconds, aspect, 1.0):
            return centred
        if not centred._inside(seconds, aspect, high):
            raise ValueError(f"camera {self.to_text()} cannot stay inside the picture")
        for _ in range(30):  # bisection on the extra zoom
            mid = (low + high) / 2
            low, high = (low, mid) if centred._inside(seconds, aspect, mid) else (mid, high)
        start = replace(centred.start, zoom=centred.start.zoom * high)
        return replace(centred, start=start)

    def _inside(self, seconds: float, aspect: float, extra: float) -> bool:
        path = replace(self, start=replace(self.start, zoom=self.start.zoom * extra))
        corners = np.array([[-1, -1, 1], [1, -1, 1], [-1, 1, 1], [1, 1, 1]], dtype=np.float64)
        for i in range(17):
            m = path.pose(i / 16, seconds).matrix(aspect)
            if np.abs(corners @ m.T).max() > 1.0 + 1e-9:
                return False
        return True

    def to_text(self) -> str:
        """A compact form for recipes: 'dolly_in low zoom=1.2 x=0 y=-0.1 roll=0 loop'."""
        s = self.start
        text = (
            f"{self.move} {self.motion} zoom={s.zoom:.6g} x={s.x:.6g} y={s.y:.6g} roll={s.roll:.6g}"
        )
        return text + (" loop" if self.loop else "")

    @classmethod
    def from_text(cls, text: str) -> CameraPath:
        """Parse `to_text()` output (or just a move name, with optional motion)."""
        words = text.split()
        if not words:
            raise ValueError("empty camera text: give a move name, e.g. 'dolly_in'")
        move, rest = words[0], words[1:]
        motion = "low"
        if rest and rest[0] in MOTIONS:
            motion, rest = rest[0], rest[1:]
        loop = "loop" in rest
        values: dict[str, float] = {}
        for word in rest:
            if word == "loop":
                continue
            match = re.fullmatch(r"(zoom|x|y|roll)=(-?[0-9.eE+-]+)", word)
            if match is None:
                raise ValueError(f"camera text {text!r}: cannot read {word!r}")
            values[match.group(1)] = float(match.group(2))
        return cls(move, motion, Pose(**values), loop)

    def end_pose(self, seconds: float) -> Pose:
        return self.pose(1.0, seconds)

    def continued(self, seconds: float) -> CameraPath:
        """The same move going on from where a clip `seconds` long ended (for extend)."""
        return replace(self, start=self.end_pose(seconds), loop=False)
