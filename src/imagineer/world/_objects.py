"""The scene's object group: layout inside its third of the frame and one silhouette per kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imagineer.world._layers import HORIZON, RGB, Canvas, Lighting, ground_colour, lit, mix
from imagineer.world.scene import POSITIONS, ObjectGroup, Scene

COLOUR_RGB: dict[str, RGB] = {
    "red": (220, 35, 35),
    "yellow": (250, 208, 20),
    "green": (40, 180, 60),
    "blue": (35, 90, 230),
    "purple": (145, 55, 200),
    "white": (246, 246, 246),
}
# Bounding box of each kind, in units of the object size (width, height).
_SHAPE: dict[str, tuple[float, float]] = {
    "flying_car": (1.0, 0.62),
    "bird": (1.0, 0.5),
    "balloon": (0.62, 1.0),
    "boat": (0.72, 1.0),
    "tree": (0.6, 1.0),
    "house": (0.72, 0.85),
}
SIZE = 0.28  # nominal object size, as a fraction of the short side
GAP = 0.065  # smallest gap between objects, as a fraction of the short side
MARGIN = 0.04  # space kept free at each side of the third, as a fraction of the third
_OUTLINE: RGB = (28, 28, 34)
_BROWN: RGB = (115, 75, 42)


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def w(self) -> float:
        return self.x1 - self.x0

    @property
    def h(self) -> float:
        return self.y1 - self.y0

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2


def _formations(n: int, in_sky: bool) -> list[list[tuple[float, float]]]:
    """Candidate layouts, most natural first: offsets in units of (width + gap, height + gap)."""
    row = [(i - (n - 1) / 2, 0.0) for i in range(n)]
    if n == 1:
        return [row]
    if n == 2:
        return [row, [(-0.15, -0.5), (0.15, 0.5)]] if in_sky else [row]
    triangle = [(-0.5, 0.5), (0.5, 0.5), (0.0, -0.5)]
    stair = [(-0.15, -1.0), (0.0, 0.0), (0.15, 1.0)]
    return [row, triangle, stair] if in_sky else [row, triangle]


def _fit(
    formation: list[tuple[float, float]],
    shape: tuple[float, float],
    avail: tuple[float, float, float],
    gap: float,
) -> float:
    """The largest object size at which the formation fits `avail` (width, height, and the
    room between the lowest base and the highest base a ground object may stand on)."""
    xs = [p[0] for p in formation]
    ys = [p[1] for p in formation]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    # width: span_x * (shape_w * s + gap) + shape_w * s <= avail_w, and likewise for height
    s_w = (avail[0] - span_x * gap) / (shape[0] * (span_x + 1))
    s_h = (avail[1] - span_y * gap) / (shape[1] * (span_y + 1))
    s_base = (avail[2] / span_y - gap) / shape[1] if span_y else s_h
    return min(s_w, s_h, s_base)


def layout(c: Canvas, scene: Scene, group: ObjectGroup, jitter: np.ndarray) -> list[Box]:
    """Boxes of the group's objects, all inside the group's third and clear of each other."""
    shape = _SHAPE[group.kind]
    third = c.width / 3
    gap = GAP * c.u
    margin = MARGIN * third
    if group.in_sky:
        top, bottom = c.y(0.05), c.y(HORIZON - 0.02)
        base_room = bottom - top
    else:  # tall ground objects may rise into the sky, but every base stays on the ground
        top, bottom = c.y(0.16), c.y(0.965)
        base_room = bottom - c.y(HORIZON + 0.03)
    avail = (third - 2 * margin, bottom - top, base_room)
    cap = SIZE * c.u
    best = max(
        _formations(group.count, group.in_sky), key=lambda f: min(cap, _fit(f, shape, avail, gap))
    )
    s = min(cap, _fit(best, shape, avail, gap))
    w, h = shape[0] * s, shape[1] * s
    xs = [p[0] * (w + gap) for p in best]
    ys = [p[1] * (h + gap) for p in best]
    gw, gh = max(xs) - min(xs) + w, max(ys) - min(ys) + h
    # place the group's box at a seeded spot inside its third
    gx0 = POSITIONS.index(group.position) * third + margin + (avail[0] - gw) * jitter[0]
    if group.in_sky:
        gy0 = top + (bottom - top - gh) * (0.1 + 0.8 * jitter[1])
    else:
        slack = min(bottom - top - gh, base_room - (gh - h))
        gy0 = bottom - gh - slack * 0.4 * jitter[1]
    boxes = []
    for ox, oy in zip(xs, ys, strict=True):
        x0 = gx0 + ox - min(xs)
        y0 = gy0 + oy - min(ys)
        boxes.append(Box(x0, y0, x0 + w, y0 + h))
    return boxes


def draw_group(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    jitter = rng.random(4)
    group = scene.objects
    if group is None:
        return
    boxes = layout(c, scene, group, jitter)
    # objects stay close to full colour at night so their colour remains readable
    colour = lit(COLOUR_RGB[group.colour], light, 0.9)
    _draw_support(c, scene, light, group, boxes)
    for i, box in enumerate(sorted(boxes, key=lambda b: b.y1)):
        _DRAWERS[group.kind](c, box, colour, light, (jitter[2] + i * 0.37) % 1.0)


def _draw_support(
    c: Canvas, scene: Scene, light: Lighting, group: ObjectGroup, boxes: list[Box]
) -> None:
    """Water under boats on land, a sandy island under trees and houses at sea."""
    water = group.kind == "boat"
    if water == (scene.landscape == "sea") or group.in_sky:
        return
    fill = lit((45, 95, 160), light) if water else lit((215, 190, 135), light)
    if not water and scene.weather == "snowy":
        fill = mix(fill, ground_colour(scene, light), 0.3)
    for b in boxes:
        pad, depth = 0.08 * b.w, 0.09 * b.h  # narrow, so neighbours' supports stay apart
        c.draw.ellipse((b.x0 - pad, b.y1 - depth, b.x1 + pad, b.y1 + depth), fill=fill)


def _outline_width(c: Canvas, b: Box) -> int:
    return max(1, round(0.05 * min(b.w, b.h)))


def _car(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    ow = _outline_width(c, b)
    facing = 1.0 if r < 0.5 else -1.0  # which way the car points

    def fx(t: float) -> float:  # t in [0, 1] from the car's tail to its nose
        return b.cx + (t - 0.5) * b.w * facing

    c.draw.ellipse(
        (b.x0 + 0.05 * b.w, b.y0 + 0.66 * b.h, b.x1 - 0.05 * b.w, b.y1), fill=(150, 250, 255)
    )
    c.draw.ellipse(
        (b.x0 + 0.2 * b.w, b.y0 + 0.72 * b.h, b.x1 - 0.2 * b.w, b.y1 - 0.06 * b.h),
        fill=(235, 255, 255),
    )
    cabin = [
        (fx(0.2), b.y0 + 0.42 * b.h),
        (fx(0.3), b.y0),
        (fx(0.62), b.y0),
        (fx(0.78), b.y0 + 0.42 * b.h),
    ]
    c.draw.polygon(cabin, fill=colour, outline=_OUTLINE, width=ow)
    glass = [
        (fx(0.3), b.y0 + 0.4 * b.h),
        (fx(0.36), b.y0 + 0.12 * b.h),
        (fx(0.6), b.y0 + 0.12 * b.h),
        (fx(0.7), b.y0 + 0.4 * b.h),
    ]
    c.draw.polygon(glass, fill=(170, 210, 235))
    body = (b.x0, b.y0 + 0.36 * b.h, b.x1, b.y0 + 0.8 * b.h)
    c.draw.rounded_rectangle(body, radius=0.2 * b.h, fill=colour, outline=_OUTLINE, width=ow)
    lamp = sorted((fx(0.9), fx(0.98)))
    c.draw.rectangle((lamp[0], b.y0 + 0.46 * b.h, lamp[1], b.y0 + 0.58 * b.h), fill=(255, 250, 200))


def _bird(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    lift = 0.15 * b.h * r
    points = [
        (b.x0, b.y0 + 0.25 * b.h + lift),
        (b.x0 + 0.28 * b.w, b.y0),
        (b.cx, b.y0 + 0.72 * b.h),
        (b.x1 - 0.28 * b.w, b.y0),
        (b.x1, b.y0 + 0.25 * b.h + lift),
    ]
    width = max(1, round(0.22 * b.h))
    c.draw.line(points, fill=_OUTLINE, width=width + 2 * _outline_width(c, b), joint="curve")
    c.draw.line(points, fill=colour, width=width, joint="curve")
    c.draw.ellipse((b.cx - 0.09 * b.w, b.y0 + 0.45 * b.h, b.cx + 0.09 * b.w, b.y1), fill=colour)


def _balloon(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    ow = _outline_width(c, b)
    neck = [
        (b.x0 + 0.12 * b.w, b.y0 + 0.5 * b.h),
        (b.x1 - 0.12 * b.w, b.y0 + 0.5 * b.h),
        (b.cx + 0.14 * b.w, b.y0 + 0.8 * b.h),
        (b.cx - 0.14 * b.w, b.y0 + 0.8 * b.h),
    ]
    c.draw.polygon(neck, fill=colour, outline=_OUTLINE, width=ow)
    c.draw.ellipse((b.x0, b.y0, b.x1, b.y0 + 0.7 * b.h), fill=colour, outline=_OUTLINE, width=ow)
    stripe = mix(colour, (255, 255, 255), 0.3)
    c.draw.ellipse(
        (b.cx - 0.16 * b.w, b.y0 + 0.02 * b.h, b.cx + 0.16 * b.w, b.y0 + 0.68 * b.h), fill=stripe
    )
    for dx in (-0.12, 0.12):
        c.draw.line(
            (b.cx + dx * b.w, b.y0 + 0.8 * b.h, b.cx + dx * b.w * 0.8, b.y0 + 0.87 * b.h),
            fill=_OUTLINE,
            width=ow,
        )
    c.draw.rectangle((b.cx - 0.13 * b.w, b.y0 + 0.86 * b.h, b.cx + 0.13 * b.w, b.y1), fill=_BROWN)


def _boat(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    ow = _outline_width(c, b)
    mast_x = b.cx - 0.05 * b.w
    c.draw.line((mast_x, b.y0, mast_x, b.y0 + 0.75 * b.h), fill=_OUTLINE, width=ow)
    sail = [
        (mast_x + 0.05 * b.w, b.y0),
        (mast_x + 0.05 * b.w, b.y0 + 0.68 * b.h),
        (b.x1 - 0.05 * b.w, b.y0 + 0.68 * b.h),
    ]
    c.draw.polygon(sail, fill=colour, outline=_OUTLINE, width=ow)
    jib = [
        (mast_x - 0.05 * b.w, b.y0 + 0.12 * b.h),
        (mast_x - 0.05 * b.w, b.y0 + 0.68 * b.h),
        (b.x0 + 0.1 * b.w, b.y0 + 0.68 * b.h),
    ]
    c.draw.polygon(jib, fill=mix(colour, (255, 255, 255), 0.25), outline=_OUTLINE, width=ow)
    hull = [
        (b.x0, b.y0 + 0.74 * b.h),
        (b.x1, b.y0 + 0.74 * b.h),
        (b.x1 - 0.16 * b.w, b.y1),
        (b.x0 + 0.16 * b.w, b.y1),
    ]
    c.draw.polygon(hull, fill=mix(colour, (20, 20, 30), 0.2), outline=_OUTLINE, width=ow)


def _tree(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    ow = _outline_width(c, b)
    c.draw.rectangle(
        (b.cx - 0.1 * b.w, b.y0 + 0.55 * b.h, b.cx + 0.1 * b.w, b.y1), fill=lit(_BROWN, light, 0.6)
    )
    if r < 0.5:
        c.draw.ellipse(
            (b.x0, b.y0, b.x1, b.y0 + 0.72 * b.h), fill=colour, outline=_OUTLINE, width=ow
        )
    else:
        cone = [(b.cx, b.y0), (b.x1, b.y0 + 0.8 * b.h), (b.x0, b.y0 + 0.8 * b.h)]
        c.draw.polygon(cone, fill=colour, outline=_OUTLINE, width=ow)


def _house(c: Canvas, b: Box, colour: RGB, light: Lighting, r: float) -> None:
    ow = _outline_width(c, b)
    wall = (b.x0 + 0.08 * b.w, b.y0 + 0.45 * b.h, b.x1 - 0.08 * b.w, b.y1)
    c.draw.rectangle(wall, fill=colour, outline=_OUTLINE, width=ow)
    roof = [(b.x0, b.y0 + 0.5 * b.h), (b.cx, b.y0), (b.x1, b.y0 + 0.5 * b.h)]
    c.draw.polygon(roof, fill=mix(colour, (40, 20, 20), 0.4), outline=_OUTLINE, width=ow)
    door_x = b.x0 + (0.22 if r < 0.5 else 0.56) * b.w
    c.draw.rectangle((door_x, b.y0 + 0.7 * b.h, door_x + 0.2 * b.w, b.y1), fill=(70, 45, 30))
    window = (255, 220, 120) if light.windows_lit else (150, 195, 230)
    win_x = b.x0 + (0.58 if r < 0.5 else 0.22) * b.w
    c.draw.rectangle((win_x, b.y0 + 0.6 * b.h, win_x + 0.18 * b.w, b.y0 + 0.76 * b.h), fill=window)


_DRAWERS: dict[str, Callable[[Canvas, Box, RGB, Lighting, float], None]] = {
    "flying_car": _car,
    "bird": _bird,
    "balloon": _balloon,
    "boat": _boat,
    "tree": _tree,
    "house": _house,
}
