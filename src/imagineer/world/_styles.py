"""Style passes run on the downsampled render: neon, pastel, noir, watercolor, pixel art."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from imagineer.world.scene import Scene

# A fixed retro palette: the six object colours with a darker shade each, then greys and the
# sky, ground and light tones of the world, so object colours survive the quantisation.
PIXEL_ART_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 35, 35), (150, 25, 30), (250, 208, 20), (180, 140, 20), (40, 180, 60), (25, 110, 45),
    (35, 90, 230), (25, 55, 150), (145, 55, 200), (90, 35, 130), (246, 246, 246), (200, 200, 210),
    (10, 10, 18), (45, 48, 60), (95, 98, 110), (150, 152, 160),
    (20, 28, 60), (55, 120, 215), (120, 170, 235), (175, 210, 245),
    (80, 60, 130), (130, 95, 165), (250, 180, 160), (255, 135, 55), (240, 215, 150),
    (200, 160, 100), (120, 85, 50), (95, 150, 70), (55, 90, 50), (40, 200, 230),
    (70, 80, 100), (110, 125, 150), (150, 165, 190), (190, 195, 205), (35, 70, 120),
)  # fmt: skip
_PAPER = np.array((250, 244, 230), dtype=np.float32)


def apply_style(image: Image.Image, scene: Scene, width: int, height: int) -> Image.Image:
    """Restyle `image` (drawn for `scene`) and return it at (width, height)."""
    if scene.style == "pixel_art":
        return _pixel_art(image, width, height)
    if scene.style == "neon":
        return _neon(image, width)
    if scene.style == "pastel":
        return _pastel(image)
    if scene.style == "noir":
        return _noir(image, scene.seed)
    if scene.style == "watercolor":
        return _watercolor(image, scene.seed, width)
    return image


def _channel_max(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 1); far faster than arr.max(axis=2) for a 3-wide last axis."""
    return np.maximum(np.maximum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])[:, :, None]


def _edges(arr: np.ndarray) -> np.ndarray:
    """Per-channel edge strength: the largest difference to a 4-neighbour (borders repeat)."""
    p = np.pad(arr, ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = p[1:-1, 1:-1]
    diffs = (
        np.abs(centre - p[:-2, 1:-1]),
        np.abs(centre - p[2:, 1:-1]),
        np.abs(centre - p[1:-1, :-2]),
        np.abs(centre - p[1:-1, 2:]),
    )
    return np.maximum(np.maximum(diffs[0], diffs[1]), np.maximum(diffs[2], diffs[3]))


def _palette_image() -> Image.Image:
    flat = [v for colour in PIXEL_ART_PALETTE for v in colour]
    flat += list(PIXEL_ART_PALETTE[0]) * (256 - len(PIXEL_ART_PALETTE))
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat)
    return pal


def _pixel_art(image: Image.Image, width: int, height: int) -> Image.Image:
    punchy = ImageEnhance.Color(image).enhance(1.2)
    small = punchy.quantize(palette=_palette_image(), dither=Image.Dither.NONE)
    return small.convert("RGB").resize((width, height), Image.Resampling.NEAREST)


def _neon(image: Image.Image, width: int) -> Image.Image:
    vivid = ImageEnhance.Color(image).enhance(1.8)
    base = np.asarray(vivid, dtype=np.float32)
    smooth = vivid.filter(ImageFilter.BoxBlur(max(0.5, width / 300)))
    # edges of the brightest channel only: a third of the work, and hue changes still show
    value = _channel_max(np.asarray(smooth, dtype=np.float32))
    # a soft threshold keeps the outlines of shapes and drops small texture
    strength = np.clip((_edges(value) - 8.0) * 2.5, 0, 255) / 255.0
    # each outline glows in its own hue, at full brightness
    hue = base * (255.0 / np.maximum(_channel_max(base), 40.0))
    edges = strength * hue
    glow_img = Image.fromarray(edges.astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(max(1.0, width / 90))
    )
    glow = np.asarray(glow_img, dtype=np.float32)
    out = base * 0.3 + edges * 1.0 + glow * 1.3
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _pastel(image: Image.Image) -> Image.Image:
    soft = ImageEnhance.Color(image).enhance(0.55)
    arr = np.asarray(soft, dtype=np.float32)
    out = arr * 0.62 + 255.0 * 0.38
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _noir(image: Image.Image, seed: int) -> Image.Image:
    arr = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    lo, hi = np.percentile(arr, (1.0, 99.0))
    # stretch contrast, but never by more than 2x, so dark night scenes do not turn to noise
    arr = np.clip((arr - lo) / max(float(hi - lo), 0.5), 0.0, 1.0)
    arr = arr * arr * (3 - 2 * arr)  # smoothstep: harder blacks and whites
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    vignette = 1.0 - 0.9 * dist
    grain = np.random.default_rng(seed + 7).normal(0.0, 0.02 * min(1.0, min(h, w) / 128), arr.shape)
    out = np.clip((arr * vignette + grain) * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")


def _paper(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 11)
    coarse = Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8))
    blotch = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    fine = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    return (1.0 + (blotch / 255.0 - 0.5) * 0.14 + fine * 0.025)[:, :, None]


def _watercolor(image: Image.Image, seed: int, width: int) -> Image.Image:
    bled = image.filter(ImageFilter.GaussianBlur(max(0.45, width / 220)))
    soft = np.asarray(ImageEnhance.Color(bled).enhance(0.9), dtype=np.float32)
    edges = _edges(_channel_max(np.asarray(bled, dtype=np.float32)))
    # pigment pools at edges: darken them a little, wash the rest towards the paper
    out = soft - edges * 0.3
    out = out * 0.82 + _PAPER * 0.18
    out = out * _paper(seed, image.width, image.height)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
