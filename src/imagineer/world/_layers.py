"""Background layers of a world render: sky, sun/moon/stars, clouds, landscape, city, weather."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from imagineer.world.scene import Scene

RGB = tuple[int, int, int]

HORIZON = 0.6  # fraction of the height where land meets sky


@dataclass(frozen=True)
class Canvas:
    """A drawing surface in supersampled pixels; `u` (the short side) is the unit of sizes."""

    draw: ImageDraw.ImageDraw
    width: int
    height: int

    @property
    def u(self) -> float:
        return float(min(self.width, self.height))

    def x(self, fx: float) -> float:
        return fx * self.width

    def y(self, fy: float) -> float:
        return fy * self.height


@dataclass(frozen=True)
class Lighting:
    """Colours and light levels that follow from the time of day and the weather."""

    sky_top: RGB
    sky_horizon: RGB
    ambient: tuple[float, float, float]  # per-channel multiplier for lit surfaces
    windows_lit: bool
    fog: RGB
    sun_x: float  # where the sun (or its reflection) sits, as a fraction of the width


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def lit(c: RGB, light: Lighting, floor: float = 0.0) -> RGB:
    """Colour `c` under the scene's light; `floor` keeps some brightness (self-lit things)."""
    return (
        min(255, round(c[0] * max(light.ambient[0], floor))),
        min(255, round(c[1] * max(light.ambient[1], floor))),
        min(255, round(c[2] * max(light.ambient[2], floor))),
    )


_TIME_LIGHT: dict[str, tuple[RGB, RGB, tuple[float, float, float]]] = {
    "dawn": ((120, 135, 200), (255, 190, 165), (0.95, 0.82, 0.8)),
    "noon": ((55, 120, 215), (165, 205, 245), (1.0, 1.0, 1.0)),
    "sunset": ((75, 55, 130), (255, 135, 55), (0.9, 0.65, 0.5)),
    "dusk": ((25, 25, 75), (125, 90, 165), (0.45, 0.42, 0.62)),
    "night": ((4, 6, 22), (22, 30, 62), (0.25, 0.28, 0.4)),
}
_WEATHER_SKY: dict[str, tuple[RGB, float, float]] = {
    # sky greyed towards a colour by an amount; light scaled
    "clear": ((0, 0, 0), 0.0, 1.0),
    "cloudy": ((170, 175, 185), 0.35, 0.9),
    "foggy": ((200, 200, 205), 0.3, 0.9),
    "rainy": ((95, 100, 110), 0.6, 0.72),
    "snowy": ((215, 218, 225), 0.5, 0.95),
}


def lighting(scene: Scene, rng: np.random.Generator) -> Lighting:
    top, horizon, ambient = _TIME_LIGHT[scene.time]
    grey, amount, scale = _WEATHER_SKY[scene.weather]
    dark = scene.time in ("dusk", "night")
    if dark:  # grey skies stay dark at night
        grey = mix(grey, top, 0.7)
    top, horizon = mix(top, grey, amount), mix(horizon, grey, amount)
    fog = mix((205, 208, 212), horizon, 0.35)
    if dark:
        fog = mix(fog, top, 0.65)
    return Lighting(
        sky_top=top,
        sky_horizon=horizon,
        ambient=(ambient[0] * scale, ambient[1] * scale, ambient[2] * scale),
        windows_lit=dark,
        fog=fog,
        sun_x=float(rng.uniform(0.15, 0.85)),
    )


def sky_image(light: Lighting, width: int, height: int) -> Image.Image:
    """A vertical gradient from the top colour down to the horizon colour."""
    t = np.clip(np.linspace(0.0, 1.0, height) / HORIZON, 0.0, 1.0) ** 1.4
    top = np.array(light.sky_top, dtype=np.float32)
    bottom = np.array(light.sky_horizon, dtype=np.float32)
    column = (top[None, :] + (bottom - top)[None, :] * t[:, None]).astype(np.uint8)
    return Image.fromarray(column[:, None, :]).resize((width, height), Image.Resampling.NEAREST)


def _disc(c: Canvas, cx: float, cy: float, r: float, fill: RGB) -> None:
    c.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def draw_celestial(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    noon_y = rng.uniform(0.08, 0.15)
    stars = rng.random((60, 3))
    moon_x, moon_y = rng.uniform(0.12, 0.88), rng.uniform(0.1, 0.2)
    overcast = scene.weather in ("rainy", "snowy")
    fade = 0.55 if overcast else 0.0
    if scene.time == "night":
        if not overcast:
            for sx, sy, sb in stars:
                r = c.u * (0.005 + 0.007 * sb)
                b = round(170 + 85 * sb)
                _disc(c, c.x(sx), c.y(sy * (HORIZON - 0.06)), r, (b, b, min(255, b + 10)))
        mx, my, r = c.x(moon_x), c.y(moon_y), 0.055 * c.u
        _disc(c, mx, my, r * 1.8, mix(light.sky_top, (60, 70, 110), 0.5 * (1 - fade)))
        _disc(c, mx, my, r, mix((240, 238, 215), light.sky_top, fade))
        _disc(c, mx + 0.45 * r, my - 0.25 * r, r * 0.85, mix(light.sky_top, (60, 70, 110), 0.5))
        return
    suns = {
        "dawn": (HORIZON - 0.04, 0.07, (255, 228, 175)),
        "noon": (noon_y, 0.055, (255, 250, 225)),
        "sunset": (HORIZON - 0.03, 0.12, (255, 125, 35)),
    }
    if scene.time not in suns:
        return
    fy, fr, colour = suns[scene.time]
    x, y, r = c.x(light.sun_x), c.y(fy), fr * c.u
    halo_base = light.sky_horizon if scene.time != "noon" else light.sky_top
    _disc(c, x, y, r * 2.2, mix(halo_base, colour, 0.25 * (1 - fade)))
    _disc(c, x, y, r * 1.5, mix(halo_base, colour, 0.5 * (1 - fade)))
    _disc(c, x, y, r, mix(colour, halo_base, fade))


_CLOUDS = {"clear": 0, "cloudy": 6, "foggy": 3, "rainy": 8, "snowy": 6}
_CLOUD_COLOUR: dict[str, RGB] = {
    "dawn": (250, 215, 215),
    "noon": (248, 248, 252),
    "sunset": (245, 170, 135),
    "dusk": (120, 105, 150),
    "night": (45, 50, 72),
}


def draw_clouds(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    params = rng.random((8, 4))
    puffs = rng.random((8, 5, 3))
    n = _CLOUDS[scene.weather]
    base = _CLOUD_COLOUR[scene.time]
    if scene.weather == "rainy":
        base = mix(base, (70, 72, 80), 0.55)
    elif scene.weather == "snowy":
        base = mix(base, (200, 202, 210), 0.3)
    for i in range(n):
        cx = c.x(-0.1 + 1.2 * params[i, 0])
        cy = c.y(0.05 + 0.3 * params[i, 1])
        w = c.width * (0.16 + 0.16 * params[i, 2])
        h = c.u * (0.05 + 0.05 * params[i, 3])
        shade = mix(base, light.sky_top, 0.25 * (i % 3) / 2)
        under = mix(shade, (40, 40, 50), 0.18)
        c.draw.ellipse((cx - w / 2, cy, cx + w / 2, cy + h), fill=under)
        for px, py, ps in puffs[i]:
            pcx = cx + (px - 0.5) * w * 0.75
            pr = h * (0.45 + 0.5 * ps)
            pcy = cy + h * 0.5 - pr * (0.6 + 0.5 * py)
            c.draw.ellipse((pcx - pr, pcy, pcx + pr, pcy + 2 * pr * 0.8), fill=shade)


_GROUND: dict[str, RGB] = {
    "mountains": (100, 125, 85),
    "hills": (95, 155, 70),
    "sea": (35, 85, 145),
    "desert": (228, 196, 138),
    "forest": (58, 98, 50),
}


def ground_colour(scene: Scene, light: Lighting) -> RGB:
    base = _GROUND[scene.landscape]
    if scene.weather == "snowy" and scene.landscape != "sea":
        # snow stays bright in any light, so snowy ground reads as white even at sunset
        return lit(mix(base, (240, 243, 248), 0.8), light, 0.45 if light.windows_lit else 0.85)
    return lit(base, light)


def _snowy(scene: Scene, colour: RGB, amount: float = 0.7) -> RGB:
    return mix(colour, (238, 242, 248), amount) if scene.weather == "snowy" else colour


def _ridge(
    c: Canvas, xs: np.ndarray, ys: np.ndarray, fill: RGB, bottom: float | None = None
) -> None:
    """Fill the area under the polyline (xs, ys) (fractions) down to `bottom` (fraction)."""
    low = c.height if bottom is None else c.y(bottom)
    points = [(c.x(x), c.y(y)) for x, y in zip(xs, ys, strict=True)]
    points += [(c.x(float(xs[-1])), low), (c.x(float(xs[0])), low)]
    c.draw.polygon(points, fill=fill)


def _waves(xs: np.ndarray, phases: np.ndarray, base: float, amp: float) -> np.ndarray:
    out = np.full_like(xs, base)
    for k, (p, a) in enumerate(phases):
        out += amp * (0.5 + a) * np.sin(xs * np.pi * (1.5 + 1.7 * k) + 6.283 * p) / (k + 1)
    return out


def draw_landscape(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    peaks = rng.random((9, 3))
    phases = rng.random((3, 2))
    trees = rng.random((48, 2))
    glints = rng.random((14, 3))
    far = rng.random((13, 3))
    h, kind = HORIZON, scene.landscape
    _ground_bands(c, scene, light)
    if kind == "mountains":
        _draw_mountains(c, scene, light, peaks, far)
    elif kind == "hills":
        xs = np.linspace(-0.02, 1.02, 40)
        back = _snowy(scene, (125, 170, 100))
        _ridge(c, xs, _waves(xs, phases, h - 0.06, 0.03), lit(back, light), h + 0.05)
    elif kind == "sea":
        for gx, gy, gl in glints:
            y = h + 0.02 + 0.36 * gy**1.5
            w = 0.04 + 0.1 * gl
            glint = mix(ground_colour(scene, light), light.sky_horizon, 0.45)
            c.draw.rectangle((c.x(gx), c.y(y), c.x(gx + w), c.y(y) + 0.008 * c.u), fill=glint)
        _sun_path(c, scene, light, glints)
        c.draw.rectangle(
            (0, c.y(h), c.width, c.y(h) + 0.01 * c.u),
            fill=mix(light.sky_horizon, (40, 80, 130), 0.5),
        )
    elif kind == "desert":
        xs = np.linspace(-0.02, 1.02, 40)
        dune = lit(_snowy(scene, (215, 170, 110)), light)
        _ridge(c, xs, _waves(xs, phases, h - 0.035, 0.025), dune, h + 0.05)
    else:
        dark = lit(_snowy(scene, (38, 78, 45), 0.45), light)
        for tx, th in trees:
            x, top = c.x(-0.02 + 1.04 * tx), c.y(h - 0.05 - 0.06 * th)
            half = 0.018 * c.width + 0.01 * c.u
            c.draw.polygon(
                [(x, top), (x + half, c.y(h + 0.02)), (x - half, c.y(h + 0.02))], fill=dark
            )


def _ground_bands(c: Canvas, scene: Scene, light: Lighting) -> None:
    """Ground from the horizon down: hazy near the horizon, darker towards the viewer."""
    ground = ground_colour(scene, light)
    bands = 8
    for i in range(bands):
        t = i / (bands - 1)
        colour = mix(mix(ground, light.sky_horizon, 0.3 * (1 - t) ** 2), (0, 0, 0), 0.16 * t)
        y0 = HORIZON + (1 - HORIZON) * (i / bands) ** 1.6
        c.draw.rectangle((0, c.y(y0), c.width, c.height), fill=colour)


def _jagged(r: np.ndarray, top: float, low: float, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """A mountain ridge: peaks (odd points) and valleys (even points), each flank roughened."""
    n = len(r) // 2
    xs = np.linspace(-0.05, 1.05, 2 * n + 1)
    xs[1::2] += (r[:n, 2] - 0.5) * 0.6 / n
    ys = np.empty(2 * n + 1)
    ys[0::2] = low - 0.07 * r[: n + 1, 0]
    ys[1::2] = top - depth * r[:n, 1]
    # a kink halfway down each flank keeps the ridge from looking like a saw blade
    mid_x = (xs[:-1] + xs[1:]) / 2
    mid_y = (ys[:-1] + ys[1:]) / 2 + (r[: 2 * n, 0] - 0.5) * 0.05
    out_x = np.empty(4 * n + 1)
    out_y = np.empty(4 * n + 1)
    out_x[0::2], out_y[0::2] = xs, ys
    out_x[1::2], out_y[1::2] = mid_x, mid_y
    return out_x, out_y


def _draw_mountains(
    c: Canvas, scene: Scene, light: Lighting, r: np.ndarray, far: np.ndarray
) -> None:
    h = HORIZON
    fx, fy = _jagged(far[:12], h - 0.12, h - 0.04, 0.1)
    haze = mix(lit(_snowy(scene, (125, 130, 160), 0.35), light), light.sky_horizon, 0.45)
    _ridge(c, fx, fy, haze, h + 0.01)
    xs, ys = _jagged(np.concatenate([r, r[:8]])[:16], h - 0.16, h - 0.02, 0.17)
    _ridge(c, xs, ys, lit(_snowy(scene, (105, 112, 142), 0.35), light), h + 0.01)
    snow = lit((240, 242, 248), light, 0.3)
    for i in range(2, len(xs) - 1, 4):
        # the cap follows the two flanks a third of the way down
        top, depth = float(ys[i]), 0.45 + 0.1 * r[(i // 4) % 9, 2]
        left = (xs[i] + (xs[i - 1] - xs[i]) * depth, ys[i] + (ys[i - 1] - ys[i]) * depth)
        right = (xs[i] + (xs[i + 1] - xs[i]) * depth, ys[i] + (ys[i + 1] - ys[i]) * depth)
        notch = (xs[i], ys[i] + (min(left[1], right[1]) - ys[i]) * 0.75)
        cap = [(xs[i], top), right, notch, left]
        c.draw.polygon([(c.x(float(a)), c.y(float(b))) for a, b in cap], fill=snow)


_WINDOW_DAY: RGB = (75, 95, 125)
_WINDOW_LIT: RGB = (255, 215, 120)
_WINDOW_OFF: RGB = (35, 38, 50)
_GLOWS: tuple[RGB, ...] = ((40, 235, 255), (120, 250, 255), (200, 255, 255))


def draw_city(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    boxes = rng.random((14, 5))
    lit_windows = rng.random((14, 8, 4))
    towers = rng.random((10, 6))
    if scene.city == "skyline":
        _draw_skyline(c, scene, light, boxes, lit_windows)
    elif scene.city == "futuristic":
        _draw_towers(c, scene, light, towers, lit_windows)


def _windows(
    c: Canvas,
    box: tuple[float, float, float, float],
    rows: int,
    cols: int,
    on: np.ndarray,
    light: Lighting,
) -> None:
    x0, y0, x1, y1 = box
    cw, rh = (x1 - x0) / cols, (y1 - y0) / rows
    for r in range(rows):
        for k in range(cols):
            if light.windows_lit:
                fill = _WINDOW_LIT if on[r % 8, k % 4] < 0.6 else _WINDOW_OFF
            else:
                fill = lit(_WINDOW_DAY, light)
            wx, wy = x0 + k * cw, y0 + r * rh
            c.draw.rectangle(
                (wx + 0.25 * cw, wy + 0.25 * rh, wx + 0.75 * cw, wy + 0.7 * rh), fill=fill
            )


def _draw_skyline(
    c: Canvas, scene: Scene, light: Lighting, boxes: np.ndarray, on: np.ndarray
) -> None:
    base = c.y(HORIZON + 0.01)
    order = np.argsort(boxes[:, 4])  # taller, further buildings first
    for i in order:
        bx, bw, bh, grey, _ = boxes[i]
        w = c.width * (0.045 + 0.05 * bw)
        x0 = c.x(-0.03 + 1.03 * bx)
        top = base - c.height * (0.1 + 0.2 * bh)
        g = round(95 + 60 * grey)
        colour = lit(_snowy(scene, (g, g - 6, g - 14), 0.15), light)
        c.draw.rectangle((x0, top, x0 + w, base), fill=colour)
        c.draw.rectangle((x0, top, x0 + w, top + 0.012 * c.u), fill=mix(colour, (20, 20, 25), 0.3))
        rows = max(2, round((base - top) / (0.035 * c.height)))
        _windows(
            c, (x0 + 0.08 * w, top + 0.03 * c.u, x0 + 0.92 * w, base), min(rows, 8), 3, on[i], light
        )


def _draw_towers(
    c: Canvas, scene: Scene, light: Lighting, towers: np.ndarray, on: np.ndarray
) -> None:
    base = c.y(HORIZON + 0.01)
    steel = (150, 170, 195) if not light.windows_lit else (70, 80, 110)
    for i, (tx, tw, th, top_kind, glow, shade) in enumerate(towers):
        w = c.width * (0.022 + 0.025 * tw)
        cx = c.x(0.02 + 0.96 * tx)
        top = base - c.height * (0.2 + 0.24 * th)
        colour = lit(mix(steel, (60, 70, 95), 0.4 * shade), light, 0.35)
        accent = _GLOWS[int(glow * 3) % 3]
        c.draw.polygon(
            [
                (cx - w / 2, base),
                (cx - w / 2, top),
                (cx, top - 0.02 * c.height),
                (cx + w / 2, top),
                (cx + w / 2, base),
            ],
            fill=colour,
        )
        if top_kind < 0.4:  # spire
            c.draw.polygon(
                [(cx - 0.15 * w, top), (cx, top - 0.1 * c.height), (cx + 0.15 * w, top)],
                fill=colour,
            )
        elif top_kind < 0.75:  # dome
            c.draw.ellipse(
                (cx - 0.6 * w, top - 0.45 * w, cx + 0.6 * w, top + 0.45 * w), fill=colour
            )
        line = max(1.0, 0.008 * c.u)
        for band in range(1 + int(th * 3)):
            y = top + (base - top) * (0.15 + 0.25 * band)
            c.draw.rectangle((cx - w / 2, y, cx + w / 2, y + line), fill=accent)
        c.draw.rectangle((cx - line / 2, top, cx + line / 2, base), fill=mix(accent, colour, 0.3))
        if light.windows_lit:
            _windows(c, (cx - 0.45 * w, top + 0.02 * c.u, cx + 0.45 * w, base), 8, 2, on[i], light)


def draw_foreground(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    phases = rng.random((3, 2))
    xs = np.linspace(-0.02, 1.02, 40)
    if scene.landscape == "hills":
        colour = lit(_snowy(scene, _GROUND["hills"]), light)
        _ridge(c, xs, _waves(xs, phases, HORIZON + 0.015, 0.012), colour)
    elif scene.landscape == "desert":
        colour = lit(_snowy(scene, _GROUND["desert"]), light)
        _ridge(c, xs, _waves(xs, phases, HORIZON + 0.012, 0.01), colour)
        shade = mix(colour, (150, 100, 60), 0.25)
        _ridge(c, xs, _waves(xs, phases[::-1], 0.82, 0.03), shade, 0.83)


def fog(image: Image.Image, light: Lighting, strength: float) -> Image.Image:
    return Image.blend(image, Image.new("RGB", image.size, light.fog), strength)


def draw_precipitation(c: Canvas, scene: Scene, light: Lighting, rng: np.random.Generator) -> None:
    drops = rng.random((90, 3))
    flakes = drops[:55]
    if scene.weather == "rainy":
        colour = lit((185, 195, 215), light, 0.45)
        width = max(1, round(0.006 * c.u))
        for x, y, r in drops:
            x0, y0 = c.x(-0.05 + 1.1 * x), c.y(y)
            length = (0.05 + 0.04 * r) * c.height
            c.draw.line((x0, y0, x0 - 0.25 * length, y0 + length), fill=colour, width=width)
    elif scene.weather == "snowy":
        for x, y, r in flakes:
            rad = c.u * (0.005 + 0.005 * r)
            cx, cy = c.x(x), c.y(y)
            c.draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=(248, 250, 255))


_SUN_GLINT: dict[str, RGB] = {"dawn": (255, 220, 170), "sunset": (255, 150, 60)}


def _sun_path(c: Canvas, scene: Scene, light: Lighting, r: np.ndarray) -> None:
    """The low sun's reflection: short bright strokes on the water below it."""
    if scene.time not in _SUN_GLINT or scene.weather in ("rainy", "snowy"):
        return
    water = ground_colour(scene, light)
    for i, (jx, _, jw) in enumerate(r[:10]):
        t = i / 9
        y = HORIZON + 0.015 + 0.33 * t**1.3
        half = (0.05 + 0.04 * jw) * (1 - 0.6 * t)
        x = light.sun_x + (jx - 0.5) * 0.03
        colour = mix(_SUN_GLINT[scene.time], water, 0.25 + 0.5 * t)
        c.draw.rectangle((c.x(x - half), c.y(y), c.x(x + half), c.y(y) + 0.012 * c.u), fill=colour)
