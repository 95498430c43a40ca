"""The world in motion: a scene, a camera path, object paths and the time of day -> frames.

Clouds drift, the low sun sinks, rain falls, flying cars, birds, balloons and boats travel
along straight paths (birds flap), the light moves on from one time of day to the next (the
windows light up at dusk), and a camera pans, dollies or orbits over it all. These clips are
the reference for imagineer's temporal metrics and the training data of a future video model.

A frame at rest (t = 0, no camera move) is exactly `render(scene, ...)`.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from imagineer.video.camera import CAMERA_MOVES, CameraPath, Pose
from imagineer.world import _layers, _objects
from imagineer.world._layers import Canvas, Lighting
from imagineer.world.render import render_with
from imagineer.world.scene import TIMES, Scene, sample_scene

MAX_SECONDS = 60.0
CLOUD_PERIOD = 1.2  # clouds sit at x in [-0.1, 1.1]: shifting by this wraps them round
# How each kind travels, in picture widths (dx) or heights (dy) per second, and bobbing.
_KIND_SPEED: dict[str, tuple[float, float, float]] = {
    "flying_car": (0.05, 0.0, 0.004),
    "bird": (0.035, 0.0, 0.006),
    "balloon": (0.008, -0.012, 0.0),
    "boat": (0.012, 0.0, 0.002),
    "tree": (0.0, 0.0, 0.0),
    "house": (0.0, 0.0, 0.0),
}
_NEXT_TIME = {"dawn": "noon", "noon": "sunset", "sunset": "dusk", "dusk": "night"}


@dataclass(frozen=True)
class WorldMotion:
    """Everything that decides a clip of the world; the same motion gives the same frames."""

    scene: Scene
    seconds: float = 2.5
    camera: CameraPath = field(default_factory=CameraPath)
    object_speed: float = 1.0  # scales each kind's own speed (0: objects hold still)
    cloud_speed: float = 0.02  # picture widths per second
    sun_drop: float = 0.02  # picture heights the low sun (dawn, sunset) sinks per second
    time_to: str | None = None  # the time of day the clip ends at (light crossfades to it)

    def __post_init__(self) -> None:
        if not isinstance(self.scene, Scene):
            raise ValueError(f"scene must be a Scene, got {type(self.scene).__name__}")
        if not 0.0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds={self.seconds}: use more than 0 and at most {MAX_SECONDS}")
        if self.time_to is not None and self.time_to not in TIMES:
            raise ValueError(f"time_to={self.time_to!r}: use None or one of {TIMES}")
        for name in ("object_speed", "cloud_speed", "sun_drop"):
            value = getattr(self, name)
            if not math.isfinite(value) or abs(value) > 10:
                raise ValueError(f"{name}={value!r}: use a finite number of at most 10")

    def frame_count(self, fps: int) -> int:
        return max(2, round(self.seconds * fps))


@dataclass(frozen=True)
class _State:
    """Offsets at one instant, as fractions of the picture."""

    cloud_dx: float
    sun_dy: float
    rain_dy: float
    object_t: float  # seconds elapsed, for object paths


class _Shifted(Canvas):
    """A canvas whose fractional coordinates are offset (a layer that moves as a whole)."""

    def __init__(self, draw: ImageDraw.ImageDraw, width: int, height: int, dx: float, dy: float):
        super().__init__(draw, width, height)
        object.__setattr__(self, "_dx", dx)
        object.__setattr__(self, "_dy", dy)

    def x(self, fx: float) -> float:
        return (fx + self._dx) * self.width  # type: ignore[attr-defined]

    def y(self, fy: float) -> float:
        return (fy + self._dy) * self.height  # type: ignore[attr-defined]


def render_frame(
    motion: WorldMotion, t: float, width: int, height: int, *, supersample: int = 2
) -> np.ndarray:
    """The frame at fraction `t` (0..1) of the clip, as (height, width, 3) uint8."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t={t}: use 0..1")
    elapsed = t * motion.seconds
    state = _State(
        cloud_dx=motion.cloud_speed * elapsed,
        sun_dy=motion.sun_drop * elapsed if motion.scene.time in ("dawn", "sunset") else 0.0,
        rain_dy=(0.9 * elapsed) % 1.0,
        object_t=elapsed * motion.object_speed,
    )
    picture = _render_state(motion.scene, state, width, height, supersample)
    if motion.time_to is not None and motion.time_to != motion.scene.time:
        weight = t * t * (3 - 2 * t)
        if weight > 0:
            later = replace(motion.scene, time=motion.time_to)
            other = _render_state(later, state, width, height, supersample)
            mixed = (1 - weight) * picture.astype(np.float32) + weight * other
            picture = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    pose = motion.camera.pose(t, motion.seconds)
    return _apply_camera(picture, pose)


def render_clip(
    motion: WorldMotion, width: int, height: int, *, fps: int = 24, supersample: int = 2
) -> list[np.ndarray]:
    """Every frame of the clip at `fps`, first to last."""
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 120:
        raise ValueError(f"fps={fps!r}: use a whole number from 1 to 120")
    n = motion.frame_count(fps)
    return [
        render_frame(motion, i / (n - 1), width, height, supersample=supersample) for i in range(n)
    ]


def write_clips(
    folder: Path,
    count: int,
    *,
    seed: int = 0,
    size: int = 64,
    fps: int = 12,
    split: str = "train",
) -> Path:
    """`count` random clips of the world as MP4 files, each with a line in clips.jsonl (its
    caption, scene, camera and motion): training data for a video model. Returns the JSONL."""
    from imagineer.media.video import write_video
    from imagineer.world.captions import caption

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r}: use a whole number of at least 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    index = folder / "clips.jsonl"
    with index.open("w", encoding="utf-8") as lines:
        for i in range(count):
            motion = sample_motion(rng, split=split)
            name = f"clip_{i:06d}.mp4"
            frames = render_clip(motion, size, size, fps=fps)
            write_video(frames, folder / name, fps=fps)
            record = {
                "file": name,
                "caption": caption(motion.scene, rng).text,
                "scene": motion.scene.to_dict(),
                "seconds": motion.seconds,
                "frames": len(frames),
                "fps": fps,
                "camera": motion.camera.to_text(),
                "object_speed": motion.object_speed,
                "cloud_speed": motion.cloud_speed,
                "sun_drop": motion.sun_drop,
                "time_to": motion.time_to,
            }
            lines.write(json.dumps(record, sort_keys=True) + "\n")
    return index


def next_time(time: str) -> str:
    """The time of day that follows `time` (night stays night)."""
    return _NEXT_TIME.get(time, time)


def sample_motion(
    rng: np.random.Generator, *, scene: Scene | None = None, split: str = "train"
) -> WorldMotion:
    """A random clip of the world: training data for a video model, or test material."""
    scene = scene if scene is not None else sample_scene(rng, split=split)
    move = CAMERA_MOVES[int(rng.integers(len(CAMERA_MOVES)))]
    motion = "high" if rng.random() < 0.5 else "low"
    seconds = float(rng.uniform(2.0, 5.0))
    aspect = 1.0
    camera = CameraPath(move, motion).contained(seconds, aspect)
    time_to = next_time(scene.time) if rng.random() < 0.3 else None
    return WorldMotion(
        scene=scene,
        seconds=seconds,
        camera=camera,
        object_speed=float(rng.uniform(0.5, 1.5)),
        cloud_speed=float(rng.uniform(0.0, 0.04)),
        sun_drop=float(rng.uniform(0.0, 0.04)),
        time_to=time_to,
    )


# --- drawing -------------------------------------------------------------------------------------


def _render_state(scene: Scene, state: _State, width: int, height: int, ss: int) -> np.ndarray:
    """render() with the moving layers offset as `state` says (the same steps, in order)."""
    return render_with(scene, width, height, ss, lambda w, h: _draw_moving(scene, state, w, h))


def _draw_moving(scene: Scene, state: _State, width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(scene.seed)
    layer_rngs = rng.spawn(8)  # the same streams as render(): a still frame is identical
    light = _layers.lighting(scene, layer_rngs[7])
    image = _layers.sky_image(light, width, height)
    draw = ImageDraw.Draw(image)
    canvas = Canvas(draw, width, height)
    _layers.draw_celestial(
        _Shifted(draw, width, height, 0.0, state.sun_dy), scene, light, layer_rngs[0]
    )
    _draw_clouds(draw, width, height, scene, light, layer_rngs[1], state.cloud_dx)
    _layers.draw_landscape(canvas, scene, light, layer_rngs[2])
    _layers.draw_city(canvas, scene, light, layer_rngs[3])
    _layers.draw_foreground(canvas, scene, light, layer_rngs[4])
    if scene.weather == "foggy":
        image = _layers.fog(image, light, strength=0.45)
        draw = ImageDraw.Draw(image)
        canvas = Canvas(draw, width, height)
    if scene.objects is not None:
        _draw_objects(canvas, scene, light, layer_rngs[5], state.object_t)
    for dy in (state.rain_dy, state.rain_dy - 1.0) if state.rain_dy else (0.0,):
        shifted = _Shifted(draw, width, height, 0.0, dy)
        _layers.draw_precipitation(shifted, scene, light, copy.deepcopy(layer_rngs[6]))
    if scene.weather == "foggy":
        image = _layers.fog(image, light, strength=0.15)
    return image


def _draw_clouds(
    draw: ImageDraw.ImageDraw,
    width: int,
    height: int,
    scene: Scene,
    light: Lighting,
    rng: np.random.Generator,
    dx: float,
) -> None:
    shift = dx % CLOUD_PERIOD
    copies = (0.0,) if shift == 0 else (shift, shift - CLOUD_PERIOD)
    for offset in copies:  # a cloud that drifts off one side comes back on the other
        canvas = _Shifted(draw, width, height, offset, 0.0)
        _layers.draw_clouds(canvas, scene, light, copy.deepcopy(rng))


def _draw_objects(
    c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator, elapsed: float
) -> None:
    """_objects.draw_group with every object moved along its own path."""
    group = scene.objects
    if group is None:
        return
    jitter = rng.random(4)
    boxes = _objects.layout(c, scene, group, jitter)
    dx, dy, bob = _KIND_SPEED[group.kind]
    colour = _layers.lit(_objects.COLOUR_RGB[group.colour], light, 0.9)
    moved = []
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].y1)
    for rank, i in enumerate(order):
        r = (jitter[2] + rank * 0.37) % 1.0
        facing = 1.0 if r < 0.5 else -1.0  # cars fly the way they point (see _objects._car)
        if group.kind == "bird":
            r = (r + 2.5 * elapsed) % 1.0  # wings flap
        shift_x = facing * dx * elapsed * c.width
        wave = math.sin(2.0 * math.pi * (0.7 * elapsed + r)) - math.sin(2.0 * math.pi * r)
        shift_y = (dy * elapsed + bob * wave) * c.height
        b = boxes[i]
        box = _objects.Box(b.x0 + shift_x, b.y0 + shift_y, b.x1 + shift_x, b.y1 + shift_y)
        moved.append((box, r))
    _objects._draw_support(c, scene, light, group, [box for box, _ in moved])
    for box, r in moved:
        _objects._DRAWERS[group.kind](c, box, colour, light, r)


def _apply_camera(picture: np.ndarray, pose: Pose) -> np.ndarray:
    """What the camera at `pose` sees of `picture` (bicubic; the identity pose is a no-op)."""
    if pose == Pose():
        return picture
    h, w = picture.shape[:2]
    m = pose.matrix(w / h)
    # grid_sample's normalised coordinates <-> PIL's continuous pixel coordinates (PIL samples
    # output pixel x at x + 0.5 and input pixel i spans [i, i + 1])
    to_norm = np.array([[2.0 / w, 0, -1.0], [0, 2.0 / h, -1.0], [0, 0, 1]])
    to_pix = np.array([[w / 2.0, 0, w / 2.0], [0, h / 2.0, h / 2.0], [0, 0, 1]])
    coeffs = (to_pix @ np.vstack([m, [0, 0, 1]]) @ to_norm)[:2].ravel()
    out = Image.fromarray(picture).transform(
        (w, h), Image.Transform.AFFINE, tuple(coeffs), resample=Image.Resampling.BICUBIC
    )
    return np.asarray(out, dtype=np.uint8)
